// Loaded with `--import <this file's URL>` in every pool worker (thread or process), before the
// worker entry: registers tsx so the worker can import TypeScript. It resolves tsx from ptr's own
// location, not from the user's cwd, so it works in projects that do not have tsx.
import { register as registerEsm } from 'tsx/esm/api'
import { register as registerCjs } from 'tsx/cjs/api'

registerEsm()
registerCjs()

// Stacks of errors thrown in a worker name the user's .ts files and lines, as the main process
// shows them (tsx's register() turns this on too; this says so where a reader looks for it).
process.setSourceMapsEnabled(true)
