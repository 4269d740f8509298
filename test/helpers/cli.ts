import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const REPO = fileURLToPath(new URL('../..', import.meta.url))
export const PTR_BIN = path.join(REPO, 'bin', 'ptr.js')

export interface PtrResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

export interface RunPtrOptions {
  cwd?: string
  env?: Record<string, string | undefined>
  /** Called once with the child, e.g. to send it a signal when some output appears. */
  onSpawn?: (child: import('node:child_process').ChildProcess) => void
  timeoutMs?: number
}

/**
 * This process's environment without ptr's settings (the host's PREFECT_* variables must not
 * change what a test sees) and without the test runner's own marker.
 */
function hostEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (name.toUpperCase().startsWith('PREFECT_') || name === 'NODE_TEST_CONTEXT') continue
    env[name] = value
  }
  return env
}

/** Runs the real `ptr` binary in a child process; CI-like by default (no colour, not a TTY). */
export function runPtr(args: readonly string[], options: RunPtrOptions = {}): Promise<PtrResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [PTR_BIN, ...args], {
      cwd: options.cwd ?? REPO,
      env: { ...hostEnv(), NO_COLOR: '1', FORCE_COLOR: undefined, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`ptr ${args.join(' ')} did not finish within ${options.timeoutMs ?? 60_000} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`))
    }, options.timeoutMs ?? 60_000)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
    options.onSpawn?.(child)
  })
}

/** Resolves when `read()` contains `text` (polling), for tests that act on output. */
export async function waitForOutput(read: () => string, text: string | RegExp, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(typeof text === 'string' ? read().includes(text) : text.test(read()))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${String(text)} in:\n${read()}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** A fresh temp folder, removed by the returned cleanup. */
export function tempDir(prefix = 'ptr-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix))
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

/** A temp folder holding `files` (paths relative to it, folders created); `remove()` deletes it. */
export function tempProject(files: Record<string, string> = {}): { dir: string; path: (...parts: string[]) => string; remove: () => void } {
  const { dir, cleanup } = tempDir('ptr-')
  for (const [name, content] of Object.entries(files)) {
    const file = path.join(dir, name)
    mkdirSync(path.dirname(file), { recursive: true })
    writeFileSync(file, content)
  }
  return { dir, path: (...parts) => path.join(dir, ...parts), remove: cleanup }
}
