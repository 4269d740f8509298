/** What a command hands back to `main()`: the exit code (commands never call process.exit). */
export interface CliResult {
  exitCode: number
}
