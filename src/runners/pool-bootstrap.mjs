// Loaded with `--import <this file's URL>` in every pool worker when ptr runs from its sources (its
// own tests), before the worker entry: registers tsx so the worker can import pool-worker.ts. It
// resolves tsx from ptr's own location, not from the user's cwd. The built package needs no
// bootstrap: its worker entry is JavaScript, and registers tsx only for a user's TypeScript module
// that is not in the run's bundle (see bundles.ts).
import { register as registerEsm } from 'tsx/esm/api'
import { register as registerCjs } from 'tsx/cjs/api'

registerEsm()
registerCjs()
// registerTypeScript() (bundles.ts) must not register tsx a second time.
globalThis[Symbol.for('ptr.tsxRegistered')] = true

// Stacks of errors thrown in a worker name the user's .ts files and lines, as the main process
// shows them (tsx's register() turns this on too; this says so where a reader looks for it).
process.setSourceMapsEnabled(true)
