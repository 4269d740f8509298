import { UsageError } from '../errors.ts'
import type { AnyFlow } from '../engine/flow.ts'
import { closest } from '../settings/suggest.ts'

/** What the CLI knows of one declared flow parameter, from its schema's JSON Schema. */
export interface ParameterInfo {
  readonly name: string
  /** JSON Schema type names (`string`, `number`, `integer`, `boolean`, `array`, `object`), when known. */
  readonly types: readonly string[]
  readonly required: boolean
  readonly description?: string | undefined
  readonly default?: unknown
}

type JsonSchema = { type?: string | string[]; properties?: Record<string, JsonSchema>; required?: string[]; description?: string; default?: unknown; anyOf?: JsonSchema[]; oneOf?: JsonSchema[] }

/**
 * The JSON Schema of the flow's `parameters` validator: through Standard JSON Schema
 * (`~standard.jsonSchema`, zod 4 and arktype), else a `toJSONSchema()`/`toJsonSchema()` method.
 * Undefined when the flow declares no schema, or its validator cannot describe itself.
 */
function parametersJsonSchema(flow: AnyFlow): JsonSchema | undefined {
  const schema = flow.options.parameters as
    | ({ '~standard': { jsonSchema?: { input?: (options: { target: string }) => unknown } } } & { toJSONSchema?: () => unknown; toJsonSchema?: () => unknown })
    | undefined
  if (!schema) return undefined
  try {
    const described = schema['~standard'].jsonSchema?.input?.({ target: 'draft-2020-12' }) ?? schema.toJSONSchema?.() ?? schema.toJsonSchema?.()
    return described && typeof described === 'object' ? (described as JsonSchema) : undefined
  } catch {
    return undefined
  }
}

const typesOf = (schema: JsonSchema): string[] => {
  const own = schema.type === undefined ? [] : Array.isArray(schema.type) ? schema.type : [schema.type]
  return [...own, ...[...(schema.anyOf ?? []), ...(schema.oneOf ?? [])].flatMap(typesOf)]
}

/** The flow's declared parameters, or undefined when it declares none that ptr can read. */
export function flowParameters(flow: AnyFlow): ParameterInfo[] | undefined {
  const schema = parametersJsonSchema(flow)
  if (!schema?.properties) return undefined
  const required = new Set(schema.required ?? [])
  return Object.entries(schema.properties).map(([name, property]) => ({
    name,
    types: typesOf(property),
    required: required.has(name) && property.default === undefined,
    description: property.description,
    default: property.default,
  }))
}

/** `ptr run FILE --help`: the flow's parameters, one a line. */
export function describeParameters(flow: AnyFlow): string {
  const parameters = flowParameters(flow)
  if (!flow.options.parameters) return `Flow '${flow.name}' declares no parameters schema: --param values are passed as given (JSON when they parse).\n`
  if (!parameters) return `Flow '${flow.name}' validates its parameters, but its schema cannot list them.\n`
  if (parameters.length === 0) return `Flow '${flow.name}' takes no parameters.\n`
  const rows = parameters.map((p) => {
    const type = p.types.length > 0 ? [...new Set(p.types)].join(' | ') : 'any'
    const notes = [p.required ? 'required' : '', p.default !== undefined ? `default ${JSON.stringify(p.default)}` : ''].filter(Boolean).join(', ')
    return [`--param ${p.name}=<${type}>`, [p.description, notes && `(${notes})`].filter(Boolean).join(' ')]
  })
  const width = Math.max(...rows.map(([left]) => left!.length))
  return `Parameters of flow '${flow.name}':\n${rows.map(([left, right]) => `  ${left!.padEnd(width)}  ${right}`.trimEnd()).join('\n')}\n`
}

function unknownParameter(name: string, flag: string, flow: AnyFlow, known: readonly ParameterInfo[]): UsageError {
  const guess = closest(name, known.map((p) => p.name))
  const list = known.length > 0 ? `its parameters: ${known.map((p) => p.name).join(', ')}` : 'it takes none'
  return new UsageError(`${flag}: flow '${flow.name}' has no parameter '${name}'${guess ? ` (did you mean '${guess}'?)` : ''}; ${list}`, 'PTR_UNKNOWN_PARAMETER')
}

/**
 * Flow parameters from `--params JSON` and repeated `--param name=value` (which win).
 * A value is parsed as JSON when it parses (`n=3` is a number, `tags=["a"]` a list), else kept
 * as a string (`name=Ada`); for a parameter the flow's schema declares as a string only, the
 * value is always kept as written (`--param code=007` stays "007").
 * With a `flow` whose schema lists its parameters, an unknown name is a usage error.
 */
export function parseFlowParameters(param: readonly string[], params: string | undefined, flow?: AnyFlow): Record<string, unknown> {
  const known = flow ? flowParameters(flow) : undefined
  const byName = new Map(known?.map((p) => [p.name, p]))
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
    if (known) for (const name of Object.keys(parsed)) if (!byName.has(name)) throw unknownParameter(name, '--params', flow!, known)
    Object.assign(result, parsed)
  }
  for (const item of param) {
    const eq = item.indexOf('=')
    const name = eq > 0 ? item.slice(0, eq).trim() : ''
    if (!name) {
      throw new UsageError(`--param '${item}' is malformed: expected name=value, e.g. --param n=3 or --param name=Ada`, 'PTR_BAD_PARAM')
    }
    const info = byName.get(name)
    if (known && !info) throw unknownParameter(name, `--param ${item}`, flow!, known)
    const raw = item.slice(eq + 1)
    let value: unknown = raw
    const stringOnly = info !== undefined && info.types.length > 0 && info.types.every((t) => t === 'string' || t === 'null')
    if (!stringOnly) {
      try {
        value = JSON.parse(raw)
      } catch {
        // Not JSON: a plain string.
      }
    }
    result[name] = value
  }
  return result
}
