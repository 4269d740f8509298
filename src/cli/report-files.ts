import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { UsageError } from '../errors.ts'

/** What each report file must end in, and what to say when it does not. */
const REPORT_FILES = {
  json: { name: /\.json$/i, rule: 'must end in .json (or be - for stdout)', example: 'report.json' },
  xml: { name: /\.xml$/i, rule: 'must end in .xml (it is JUnit XML)', example: 'junit.xml' },
  html: { name: /\.html?$/i, rule: 'must end in .html (it is one self-contained page)', example: 'run.html' },
} as const

/**
 * `--output-file report.json` (or `-`), `--junit junit.xml`, `--report run.html`: a report file
 * must end in its own extension, so a flow file can never be overwritten. Checked before the run.
 */
export function checkReportPath(file: string | undefined, flag: string, kind: keyof typeof REPORT_FILES): string | undefined {
  if (file === undefined || (kind === 'json' && file === '-')) return file
  const { name, rule, example } = REPORT_FILES[kind]
  if (!name.test(file)) throw new UsageError(`${flag} ${file}: the report file ${rule}; for example ${flag} ${example}`, 'PTR_BAD_OUTPUT')
  return file
}

/** Writes a report file (JSON, JUnit, HTML), making its folder; a path that cannot be written is a usage error. */
export function writeReport(file: string, text: string, flag: string): void {
  try {
    mkdirSync(path.dirname(path.resolve(file)), { recursive: true })
    writeFileSync(file, text)
  } catch (error) {
    throw new UsageError(`${flag} ${file}: cannot write the report (${(error as Error).message}); choose a writable path`, 'PTR_REPORT_WRITE')
  }
}
