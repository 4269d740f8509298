import { execFileSync, spawnSync } from 'node:child_process'

/** Whether tmux is installed (CI installs it; see .ci/run). */
export const hasTmux = (): boolean => spawnSync('tmux', ['-V']).status === 0

/**
 * A real terminal: a tmux session on a private server socket, so tests read the screen as a
 * person would see it. `close()` kills the server and everything in it.
 */
export class Terminal {
  readonly #socket: string
  readonly cols: number
  readonly rows: number

  constructor(name: string, cols = 100, rows = 30) {
    this.#socket = `ptr-test-${process.pid}-${name}`
    this.cols = cols
    this.rows = rows
  }

  #tmux(...args: string[]): string {
    return execFileSync('tmux', ['-L', this.#socket, ...args], { encoding: 'utf8' })
  }

  /** Starts an interactive shell in the terminal, with the given working folder. */
  open(cwd: string): this {
    this.#tmux('-f', '/dev/null', 'new-session', '-d', '-s', 'main', '-x', String(this.cols), '-y', String(this.rows), '-c', cwd, 'bash --norc --noprofile')
    this.#tmux('set-option', '-t', 'main', 'history-limit', '5000')
    // The test runner's environment (CI=true in CI, node:test's own variables) must not leak in.
    this.type('unset CI NODE_TEST_CONTEXT NO_COLOR FORCE_COLOR; export PS1="$ "; clear')
    return this
  }

  /** Types a line and presses Enter. */
  type(line: string): void {
    this.#tmux('send-keys', '-t', 'main', '-l', line)
    this.#tmux('send-keys', '-t', 'main', 'Enter')
  }

  /** Sends keys by tmux name, e.g. `C-c`. */
  keys(...keys: string[]): void {
    this.#tmux('send-keys', '-t', 'main', ...keys)
  }

  /** The visible screen. */
  screen(): string {
    return this.#tmux('capture-pane', '-p', '-t', 'main')
  }

  /** Everything printed so far, scrollback included. */
  scrollback(): string {
    return this.#tmux('capture-pane', '-p', '-S', '-', '-t', 'main')
  }

  /** Lines that scrolled off the top of the screen. */
  historySize(): number {
    return Number(this.#tmux('display-message', '-p', '-t', 'main', '#{history_size}').trim())
  }

  cursorVisible(): boolean {
    return this.#tmux('display-message', '-p', '-t', 'main', '#{cursor_flag}').trim() === '1'
  }

  /** Polls the screen until `test` passes; returns the screen that passed. */
  async waitFor(test: RegExp | ((screen: string) => boolean), timeoutMs = 30_000, read: () => string = () => this.screen()): Promise<string> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const screen = read()
      if (typeof test === 'function' ? test(screen) : test.test(screen)) return screen
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${String(test)} on the screen:\n${screen}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }

  close(): void {
    spawnSync('tmux', ['-L', this.#socket, 'kill-server'])
  }
}
