import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { UsageError } from '../errors.ts'

/** `--report run.html`: the file must be an .html path, so a flow file can never be overwritten. */
export function checkHtmlReportPath(file: string | undefined, flag = '--report'): string | undefined {
  if (file === undefined) return undefined
  if (!/\.html?$/i.test(file)) throw new UsageError(`${flag} ${file}: the report file must end in .html (it is one self-contained page); for example ${flag} run.html`, 'PTR_BAD_OUTPUT')
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
