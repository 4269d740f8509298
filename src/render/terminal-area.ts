/**
 * A block of lines redrawn in place at the bottom of a terminal, with everything else written
 * above it (and so kept in the scrollback), the way vitest keeps test output above its summary.
 * Writes to stdout and stderr by anyone else while the area is shown are put above it too.
 */
const ESC = '\u001B['
const HIDE_CURSOR = `${ESC}?25l`
const SHOW_CURSOR = `${ESC}?25h`
const ANSI = /\u001B\[[0-9;?]*[A-Za-z]/y

/** Terminal columns a code point takes: 2 for the wide East Asian ranges and emoji, else 1. */
const widthOf = (code: number) =>
  (code >= 0x1100 && code <= 0x115f) ||
  (code >= 0x2e80 && code <= 0xa4cf) ||
  (code >= 0xac00 && code <= 0xd7a3) ||
  (code >= 0xf900 && code <= 0xfaff) ||
  (code >= 0xfe30 && code <= 0xfe4f) ||
  (code >= 0xff00 && code <= 0xff60) ||
  (code >= 0xffe0 && code <= 0xffe6) ||
  (code >= 0x1f300 && code <= 0x1faff)
    ? 2
    : 1

/** Cuts a line (colour codes kept, not counted) so it fits in `columns` terminal cells. */
export function fitLine(line: string, columns: number): string {
  let width = 0
  let i = 0
  while (i < line.length) {
    ANSI.lastIndex = i
    const code = ANSI.exec(line)
    if (code) {
      i += code[0].length
      continue
    }
    const point = line.codePointAt(i)!
    const w = widthOf(point)
    if (width + w > columns - 1 && i < line.length - 1) return `${line.slice(0, i)}…${ESC}0m`
    if (width + w > columns) return `${line.slice(0, i)}${ESC}0m`
    width += w
    i += point > 0xffff ? 2 : 1
  }
  return line
}

/**
 * Moves up over the last `lines` lines, erasing each. Line by line, not with erase-below: from
 * the top-left corner that would clear the whole screen, which some terminals (tmux) first push
 * into the scrollback.
 */
const erase = (lines: number) => (lines === 0 ? '' : `\r${`${ESC}1A${ESC}2K`.repeat(lines)}`)

type Write = (chunk: unknown, ...rest: unknown[]) => boolean

export class TerminalArea {
  readonly #out: NodeJS.WriteStream
  readonly #write: Write
  #lines = 0
  #patched: { stream: NodeJS.WriteStream; write: Write }[] = []
  #onExit = () => this.#raw(SHOW_CURSOR)

  constructor(out: NodeJS.WriteStream = process.stdout) {
    this.#out = out
    this.#write = out.write.bind(out) as Write
  }

  get columns(): number {
    return this.#out.columns || 80
  }

  #raw(text: string): void {
    this.#write(text)
  }

  /** Hides the cursor and routes other writes to stdout and stderr above the area. */
  start(): void {
    this.#raw(HIDE_CURSOR)
    process.on('exit', this.#onExit)
    for (const stream of new Set([this.#out, process.stdout, process.stderr])) {
      if (!stream.isTTY) continue
      const write = stream.write.bind(stream) as Write
      this.#patched.push({ stream, write: stream.write as Write })
      stream.write = ((chunk: unknown, ...rest: unknown[]) => {
        this.#clear()
        return write(chunk, ...rest)
      }) as typeof stream.write
    }
  }

  #clear(): void {
    if (this.#lines === 0) return
    this.#raw(erase(this.#lines))
    this.#lines = 0
  }

  /** Writes `above` (kept in the scrollback), then draws `lines` in place of the previous frame. */
  draw(lines: readonly string[], above: readonly string[] = []): void {
    const columns = this.columns
    let text = erase(this.#lines)
    if (above.length > 0) text += `${above.join('\n')}\n`
    if (lines.length > 0) text += `${lines.map((l) => fitLine(l, columns)).join('\n')}\n`
    this.#lines = lines.length
    this.#raw(text)
  }

  /** Draws the last frame for good (it stays on screen), puts stdout and stderr back, shows the cursor. */
  stop(lines: readonly string[], above: readonly string[] = []): void {
    this.draw(lines, above)
    this.#lines = 0
    this.release()
  }

  /** Gives the terminal back at once: the writes put back and the cursor shown. */
  release(): void {
    for (const { stream, write } of this.#patched) stream.write = write as typeof stream.write
    this.#patched = []
    process.off('exit', this.#onExit)
    this.#raw(SHOW_CURSOR)
  }
}
