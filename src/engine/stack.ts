import path from 'node:path'
import { fileURLToPath } from 'node:url'

/** A place in a stack trace: an absolute file path, line and column. */
export interface StackFrame {
  readonly path: string
  readonly line: number
  readonly column: number
}

const FRAME = /^\s*at (?:.*? \()?(?:async )?((?:file:\/\/)?\/[^()]*?|[A-Za-z]:\\[^()]*?):(\d+):(\d+)\)?\s*$/

/** The frames of a stack that point at files, in order (file URLs turned into paths). */
export function stackFrames(stack: string | undefined): StackFrame[] {
  const frames: StackFrame[] = []
  for (const line of (stack ?? '').split('\n')) {
    const match = FRAME.exec(line)
    if (!match) continue
    let file = match[1]!
    if (file.startsWith('file://')) {
      try {
        file = fileURLToPath(file)
      } catch {
        continue
      }
    }
    frames.push({ path: file, line: Number(match[2]), column: Number(match[3]) })
  }
  return frames
}

/**
 * ptr's own code: its package's src/ (also as the built modules' source maps name it), dist/ and
 * bin/. A frame there is never the user's: not where a task is defined, not where an error began.
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const OWN = ['src', 'dist', 'bin'].map((folder) => path.join(ROOT, folder) + path.sep)
export const isPtrOwnFile = (file: string): boolean => OWN.some((own) => file.startsWith(own))
