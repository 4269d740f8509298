/**
 * A real headless Chromium (Debian's `chromium`, installed by .ci/run) driven by playwright-core
 * through its executable path: playwright downloads no browser of its own.
 */
import { existsSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import type { Browser, Page } from 'playwright-core'
import { chromium } from 'playwright-core'

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome']

/** The browser to drive: `PTR_TEST_CHROMIUM`, else the system's chromium. */
export function chromiumPath(): string {
  const named = process.env.PTR_TEST_CHROMIUM
  if (named) return named
  const found = CANDIDATES.find((file) => existsSync(file))
  if (!found) throw new Error(`no Chromium found (looked at ${CANDIDATES.join(', ')}): apt-get install chromium (as .ci/run does), or set PTR_TEST_CHROMIUM to a Chromium binary`)
  return found
}

/** A skip reason for browser tests when no Chromium is here, except in CI, where they must run (and fail). */
export function skipWithoutChromium(): string | false {
  if (process.env.CI) return false
  try {
    chromiumPath()
    return false
  } catch {
    return 'chromium is not installed: apt-get install -y chromium to run the HTML report tests (or set PTR_TEST_CHROMIUM)'
  }
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: chromiumPath(), headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] })
}

export interface OpenedReport {
  page: Page
  /** Every request the page made (the report file itself included). */
  requests: string[]
  /** Requests to anything but the report file: aborted, and a test failure. */
  blocked: string[]
  /** Uncaught errors in the page. */
  pageErrors: string[]
  close: () => Promise<void>
}

/** Opens `file` by file:// URL in a fresh context that lets no request through but the file itself; waits until the page has drawn. */
export async function openReport(browser: Browser, file: string, viewport = { width: 1300, height: 1000 }): Promise<OpenedReport> {
  const context = await browser.newContext({ viewport, offline: true })
  const url = pathToFileURL(file).href
  const requests: string[] = []
  const blocked: string[] = []
  const pageErrors: string[] = []
  await context.route('**/*', (route) => {
    const target = route.request().url()
    if (target === url) return route.continue()
    blocked.push(target)
    return route.abort()
  })
  const page = await context.newPage()
  page.on('request', (request) => requests.push(request.url()))
  page.on('pageerror', (error) => pageErrors.push(String(error)))
  await page.goto(url)
  await page.waitForSelector('body[data-ready="1"]', { state: 'attached', timeout: 20_000 })
  return { page, requests, blocked, pageErrors, close: () => context.close() }
}
