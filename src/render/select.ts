/**
 * Which renderer a run gets: one pure function, so the choice can be tested without a terminal.
 */
export type RendererKind = 'live' | 'plain'

export interface RendererChoiceInput {
  /** The `output` setting: auto, live, plain or json. */
  output: string
  /** Whether the stream the view would draw on is a terminal. */
  isTTY: boolean
  env: Readonly<Record<string, string | undefined>>
}

/** Whether `CI` says this is a CI system (`CI=true`, `CI=1`, any value but `false`/`0`). */
export const isCI = (env: Readonly<Record<string, string | undefined>>): boolean => {
  const value = env.CI
  return value !== undefined && value !== '' && value !== 'false' && value !== '0'
}

/**
 * `live` on a terminal outside CI (or when asked for), `plain` otherwise. `--output live` on
 * something that is not a terminal still gets `plain`: cursor codes in a pipe help nobody.
 */
export function chooseRenderer({ output, isTTY, env }: RendererChoiceInput): RendererKind {
  if (output === 'plain' || output === 'json') return 'plain'
  if (!isTTY || env.TERM === 'dumb') return 'plain'
  if (output === 'live') return 'live'
  return isCI(env) ? 'plain' : 'live'
}

/** Whether colour is on: `always`/`never` decide; `auto` follows FORCE_COLOR, NO_COLOR and the terminal. */
export function chooseColor(color: string, isTTY: boolean, env: Readonly<Record<string, string | undefined>>): boolean {
  if (color === 'always') return true
  if (color === 'never') return false
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0' && env.FORCE_COLOR !== 'false') return true
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false
  return isTTY && env.TERM !== 'dumb'
}
