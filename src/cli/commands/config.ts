import type { Command } from 'commander'
import { Option } from 'commander'
import type { CliResult } from '../cli-result.ts'
import type { SettingSpec } from '../../settings/schema.ts'

/** `ptr config view`: every setting, its value and (with --show-sources) where it came from. */
export function defineConfigCommand(program: Command, result: CliResult): void {
  const config = program.command('config').description('show ptr settings (flags, environment, .prefectrc)')
  const view = config
    .command('view')
    .description('print every setting with its value, resolved as `ptr run` would')
    .argument('[file]', "a flow file: include what the flow's own code says about its runner")
    .argument('[flow]', 'the flow in that file, by export name or flow name')
    .option('--show-sources', 'add where each value came from (flag, flow, env VAR, file PATH, default)')
    .option('--json', 'print one JSON object: { configFile, settings: { KEY: { value, source, origin } }, hints }')
    .option('-c, --config <path>', 'read settings from this config file instead of searching for one')
  // Every setting's flag, so the view shows what a run given the same flags would get. Added
  // once `config` is the command (the settings schema, and zod, load only for it), before it
  // parses its own arguments: `ptr config help view` shows them too.
  let flags: Option[] = []
  program.hook('preSubcommand', async (_program, command) => {
    if (command !== config || flags.length > 0) return
    const { SETTINGS } = await import('../../settings/schema.ts')
    // Node 20 has no Map.groupBy.
    const byFlag = new Map<string, SettingSpec<any>[]>()
    for (const spec of SETTINGS) if (spec.flag !== undefined) byFlag.set(spec.flag, [...(byFlag.get(spec.flag) ?? []), spec])
    flags = [...byFlag].map(([flag, specs]) => {
      const kinds = specs.map((s) => s.appliesTo).filter((k) => k !== undefined)
      const description = kinds.length > 1 ? `size of the ${kinds.join(' or ')} runner, whichever is in use` : specs[0]!.description
      const option = new Option(`${flag} <value>`, description)
      view.addOption(option)
      return option
    })
  })
  view
    .addHelpText(
      'after',
      `
Examples:
  $ ptr config view --show-sources
  $ ptr config view flows/hello.ts --show-sources   include the flow's own runner
  $ ptr config view --json --config ./ci.prefectrc.yaml

Precedence, highest first: flag > the flow's own code > environment > config file > default.
Settings, variables and config keys: docs/settings.md.`,
    )
    .action(async (file: string | undefined, flowName: string | undefined, options: Record<string, string | boolean | undefined>) => {
      const { configViewCommand } = await import('../config-view.ts')
      result.exitCode = await configViewCommand({
        file,
        flowName,
        configPath: options.config as string | undefined,
        flags: Object.fromEntries(flags.map((o) => [o.long!, options[o.attributeName()] as string | undefined])),
        showSources: options.showSources === true,
        json: options.json === true,
      })
    })
}
