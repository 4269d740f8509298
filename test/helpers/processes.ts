import { readFileSync, readdirSync } from 'node:fs'

/** Pids of the live child processes of `pid` (and their children, with `deep`), from /proc. */
export function childPids(pid: number = process.pid, deep = false): number[] {
  const byParent = new Map<number, number[]>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    let stat: string
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
    } catch {
      continue
    }
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    if (fields[0] === 'Z') continue
    const ppid = Number(fields[1])
    const list = byParent.get(ppid) ?? []
    list.push(Number(entry))
    byParent.set(ppid, list)
  }
  const out: number[] = []
  const visit = (p: number) => {
    for (const child of byParent.get(p) ?? []) {
      out.push(child)
      if (deep) visit(child)
    }
  }
  visit(pid)
  return out
}

export const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z'
  } catch {
    return false
  }
}

/** Waits until none of `pids` is alive (or `timeoutMs` passes); returns those still alive. */
export async function waitForExit(pids: readonly number[], timeoutMs = 5_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const alive = pids.filter(isAlive)
    if (alive.length === 0 || Date.now() > deadline) return alive
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** tsx's esbuild service (a child of any process that transforms TypeScript on a cold cache). */
export const isEsbuildService = (pid: number): boolean => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('esbuild')
  } catch {
    return false
  }
}

/**
 * Waits until this process has no child processes left; returns those still there. tsx's esbuild
 * service (a child of any process that loaded tsx) is not counted.
 */
export async function waitForNoChildren(timeoutMs = 5_000): Promise<number[]> {
  return waitForExit(childPids().filter((pid) => !isEsbuildService(pid)), timeoutMs)
}
