import { UsageError } from '../errors.ts'

/**
 * Flow parameters from `--params JSON` and repeated `--param name=value` (which win).
 * A value is parsed as JSON when it parses (`n=3` is a number, `tags=["a"]` a list), else kept
 * as a string (`name=Ada`).
 */
export function parseFlowParameters(param: readonly string[], params: string | undefined): Record<string, unknown> {
  const result: Record<string, unknown> = {}
  if (params !== undefined) {
    let parsed: unknown
    try {
      parsed = JSON.parse(params)
    } catch (error) {
      throw new UsageError(`--params is not valid JSON (${(error as Error).message}); give one object, e.g. --params '{"n": 3}'`, 'PTR_BAD_PARAMS')
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new UsageError(`--params must be a JSON object of named parameters, e.g. --params '{"n": 3}'; got ${Array.isArray(parsed) ? 'an array' : typeof parsed}`, 'PTR_BAD_PARAMS')
    }
    Object.assign(result, parsed)
  }
  for (const item of param) {
    const eq = item.indexOf('=')
    const name = eq > 0 ? item.slice(0, eq).trim() : ''
    if (!name) {
      throw new UsageError(`--param '${item}' is malformed: expected name=value, e.g. --param n=3 or --param name=Ada`, 'PTR_BAD_PARAM')
    }
    const raw = item.slice(eq + 1)
    let value: unknown = raw
    try {
      value = JSON.parse(raw)
    } catch {
      // Not JSON: a plain string.
    }
    result[name] = value
  }
  return result
}
