/**
 * How an error is shown to a person: its class and message, the first frame of the stack in the
 * user's own code (relative to the working folder), a few lines of that code around it, and the
 * words for states and counts. Shared by the summary, the live view and the reports.
 */
import { readFileSync } from 'node:fs'
import path from 'node:path'
import type { ChalkInstance } from 'chalk'
import { isPtrOwnFile, stackFrames } from '../engine/stack.ts'

/** A place in the user's code, from a stack frame. */
export interface SourceFrame {
  /** Absolute path. */
  readonly path: string
  /** `path` relative to the working folder (or absolute when outside it). */
  readonly file: string
  readonly line: number
  readonly column: number
}

/** The frames of a stack that point at files, in order, with their paths relative to `cwd`. */
function sourceFrames(stack: string | undefined, cwd = process.cwd()): SourceFrame[] {
  return stackFrames(stack).map((frame) => {
    const relative = path.relative(cwd, frame.path)
    return { ...frame, file: relative.startsWith('..') || path.isAbsolute(relative) ? frame.path : relative }
  })
}

const isUserFile = (file: string) => !file.includes(`${path.sep}node_modules${path.sep}`) && !isPtrOwnFile(file)

/** The first frame of the stack in the user's code (not Node's, not a dependency's, not ptr's). */
export function userFrame(stack: string | undefined, cwd = process.cwd()): SourceFrame | undefined {
  return sourceFrames(stack, cwd).find((frame) => isUserFile(frame.path))
}

/**
 * A few lines of the source around `frame`, the line marked and a caret under the column, as
 * vitest shows them. Empty when the file cannot be read.
 */
export function codeFrame(frame: SourceFrame, c: ChalkInstance, around = 2): string[] {
  let source: string
  try {
    source = readFileSync(frame.path, 'utf8')
  } catch {
    return []
  }
  const lines = source.split(/\r?\n/)
  if (frame.line < 1 || frame.line > lines.length) return []
  const first = Math.max(1, frame.line - around)
  const last = Math.min(lines.length, frame.line + around)
  const width = String(last).length
  // On a terminal, a code line never wraps (the frame sits indented under the error).
  const room = Math.max(40, (process.stdout.isTTY ? process.stdout.columns : 200) - width - 12)
  // A column past the room: the window slides right, so the caret still points at the code.
  const shift = frame.column > room - 8 ? frame.column - Math.floor(room / 2) : 0
  const out: string[] = []
  for (let n = first; n <= last; n++) {
    if (n > frame.line && lines.slice(n - 1, last).every((l) => l.trim() === '')) break
    let text = lines[n - 1]!.replace(/\t/g, '  ')
    if (shift > 0) text = text.length > shift ? `…${text.slice(shift + 1)}` : ''
    if (text.length > room) text = `${text.slice(0, room - 1)}…`
    const gutter = `${n === frame.line ? '>' : ' '} ${String(n).padStart(width)} |`
    out.push(n === frame.line ? `${c.red(gutter)} ${text}` : c.dim(`${gutter} ${text}`))
    if (n === frame.line) out.push(`${' '.repeat(width + 2)} ${c.dim('|')} ${' '.repeat(Math.max(0, frame.column - 1 - shift))}${c.red('^')}`)
  }
  return out
}

/** The `code` of an error, if it has a string one (ptr's codes start with `PTR_`). */
export const errorCode = (error: unknown): string | undefined => {
  const code = (error as { code?: unknown } | undefined)?.code
  return typeof code === 'string' ? code : undefined
}
const isPtrError = (error: Error) => errorCode(error)?.startsWith('PTR_') === true

/** `TypeError: message`; ptr's own errors (their class says little) show their message alone. */
export function errorHeadline(error: Error): string {
  const message = error.message.split('\n')[0] ?? ''
  if (isPtrError(error) || error.name === 'Error') return message
  return `${error.name}: ${message}`
}

/**
 * The lines that show an error: its headline (the first line), then where it came from in the user's code with a
 * code frame (or, with `debug`, the whole stack), then its cause, one level at a time.
 */
export function errorLines(error: Error, c: ChalkInstance, options: { debug?: boolean; indent?: string; cwd?: string } = {}): string[] {
  const indent = options.indent ?? '  '
  const lines: string[] = []
  let current: unknown = error
  for (let depth = 0; current instanceof Error && depth < 4; depth++) {
    const err: Error = current
    const headline = errorHeadline(err)
    lines.push(depth === 0 ? `${indent}${headline}` : `${indent}${c.dim('caused by')} ${headline}`)
    const frame = isPtrError(err) ? undefined : userFrame(err.stack, options.cwd)
    if (options.debug && err.stack) {
      lines.push(...err.stack.split('\n').slice(1).map((l) => `${indent}${c.dim(l.trim())}`))
    } else if (frame) {
      lines.push(`${indent}${c.dim('at')} ${c.cyan(`${frame.file}:${frame.line}:${frame.column}`)}`)
    }
    if (frame) lines.push(...codeFrame(frame, c).map((l) => `${indent}  ${l}`))
    current = err.cause
    // A cause that says the same as its error adds nothing.
    if (current instanceof Error && current.message === err.message && current.name === err.name) break
  }
  return lines
}

/** The root of a NotReady chain: the deepest upstream run named by an UpstreamTaskRunError. */
export function upstreamRoot(error: Error | undefined): { taskRunId: string; error: unknown } | undefined {
  let root: { taskRunId: string; error: unknown } | undefined
  let current: unknown = error
  for (let depth = 0; current instanceof Error && depth < 100; depth++) {
    const id = (current as { upstreamTaskRunId?: unknown }).upstreamTaskRunId
    if (typeof id !== 'string') break
    root = { taskRunId: id, error: current.cause }
    current = current.cause
  }
  return root
}

const WORDS: Record<string, string> = { TimedOut: 'timed out', NotReady: 'not ready', AwaitingRetry: 'awaiting retry' }

/** A state name as a word people read: `Failed` → `failed`, `TimedOut` → `timed out`. */
export const stateWord = (name: string): string => WORDS[name] ?? name.toLowerCase()

/** `1 attempt`, `3 attempts`, `1 retry`, `2 retries`. */
export const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`

/** How a failed run's attempts read after its state: `after 2 attempts`, or `before it started`. */
export const attemptsText = (attempts: number): string => (attempts === 0 ? 'before it started' : `after ${plural(attempts, 'attempt')}`)

/** GitHub Actions workflow-command escaping (data and property values differ). */
const escapeData = (text: string) => text.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A')
const escapeProperty = (text: string) => escapeData(text).replace(/:/g, '%3A').replace(/,/g, '%2C')

/** `::error file=…,line=…,col=…,title=…::message`, as GitHub Actions reads it to mark a line of code. */
export function githubAnnotation(title: string, error: Error, cwd = process.cwd()): string {
  const frame = isPtrError(error) ? undefined : userFrame(error.stack, cwd)
  const where = frame ? `file=${escapeProperty(frame.file)},line=${frame.line},col=${frame.column},` : ''
  return `::error ${where}title=${escapeProperty(title)}::${escapeData(errorHeadline(error))}`
}
