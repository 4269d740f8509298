import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
export const PTR_BIN = path.join(REPO_ROOT, 'bin', 'ptr.js')

export interface PtrResult {
  code: number | null
  stdout: string
  stderr: string
}

/**
 * The environment a child `ptr` gets: this process's, without PREFECT_* variables (the host's
 * must not leak into a test) or the test runner's own markers, plus `env`.
 */
export function cleanEnv(env: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (name.toUpperCase().startsWith('PREFECT_') || name === 'NODE_TEST_CONTEXT' || name === 'NODE_OPTIONS') continue
    base[name] = value
  }
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined) delete base[name]
    else base[name] = value
  }
  return base
}

/** Runs the real `ptr` binary as a child process and collects its output. */
export function runPtr(args: readonly string[], options: { cwd: string; env?: Record<string, string | undefined>; timeoutMs?: number }): Promise<PtrResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [PTR_BIN, ...args], { cwd: options.cwd, env: cleanEnv(options.env), stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

/** A temporary folder with the given files (paths relative to it); `remove()` deletes it. */
export function tempProject(files: Record<string, string> = {}): { dir: string; path: (...parts: string[]) => string; remove: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ptr-'))
  for (const [name, content] of Object.entries(files)) {
    const file = path.join(dir, name)
    mkdirSync(path.dirname(file), { recursive: true })
    writeFileSync(file, content)
  }
  return { dir, path: (...parts) => path.join(dir, ...parts), remove: () => rmSync(dir, { recursive: true, force: true }) }
}
