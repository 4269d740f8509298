// Loaded with `--import <this file's URL>` in the history's writer thread when ptr runs from its
// sources (its own tests and benchmarks): registers tsx so the thread can import writer-worker.ts.
// The built package needs none: its writer-worker.js is JavaScript.
import { register } from 'tsx/esm/api'

register()
