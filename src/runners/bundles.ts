/**
 * Bundles of the user's modules made for a run (`ptr run` bundles the flow file once): a pool
 * worker asked for a task of one of `modules` imports the bundle, plain JavaScript, instead of
 * that module through tsx. The pool runner hands them to its workers with each probe; workers
 * started later read them from the environment they inherit.
 */
export interface ModuleBundle {
  /** File URL of the bundle (an ES module). */
  readonly url: string
  /** File URLs of the user's modules it holds (each evaluated once, when the bundle is imported). */
  readonly modules: readonly string[]
  /** Whether it imports TypeScript left outside it (ptr's own sources, a package's .ts): then tsx is registered first. */
  readonly typescript: boolean
}

/** The environment variable that carries the bundles (JSON) to workers started after they were made. */
export const BUNDLES_ENV = 'PTR_MODULE_BUNDLES'

let bundles: readonly ModuleBundle[] = []

/** Makes `bundle` the one that workers use for its modules; returns the function that stops that. */
export function useModuleBundle(bundle: ModuleBundle): () => void {
  const plain: ModuleBundle = { url: bundle.url, modules: [...bundle.modules], typescript: bundle.typescript }
  bundles = [...bundles, plain]
  process.env[BUNDLES_ENV] = JSON.stringify(bundles)
  return () => {
    bundles = bundles.filter((b) => b !== plain)
    if (bundles.length > 0) process.env[BUNDLES_ENV] = JSON.stringify(bundles)
    else delete process.env[BUNDLES_ENV]
  }
}

/**
 * Forgets bundles this process inherited through the environment (a `ptr run` started from a
 * task of another run): only a process's own run decides which bundle its workers import.
 */
export function forgetInheritedBundles(): void {
  if (bundles.length === 0) delete process.env[BUNDLES_ENV]
}

/** The bundles in use in this process (set with useModuleBundle, or inherited through the environment). */
export function moduleBundles(): readonly ModuleBundle[] {
  if (bundles.length === 0 && process.env[BUNDLES_ENV]) {
    try {
      bundles = JSON.parse(process.env[BUNDLES_ENV]) as ModuleBundle[]
    } catch {
      bundles = []
    }
  }
  return bundles
}

/** Adds bundles a worker was told about (with a probe). */
export function addModuleBundles(more: readonly ModuleBundle[]): void {
  const known = new Set(moduleBundles().map((b) => b.url))
  const added = more.filter((b) => !known.has(b.url))
  if (added.length > 0) bundles = [...bundles, ...added]
}

/** Set on globalThis by whoever registered tsx in this isolate (registerTypeScript, or pool-bootstrap.mjs in a worker). */
const REGISTERED = Symbol.for('ptr.tsxRegistered')
type WithFlag = { [REGISTERED]?: Promise<void> | true }

/** Registers tsx (ESM and CommonJS hooks) in this isolate, once: for TypeScript outside any bundle. */
export function registerTypeScript(): Promise<void> {
  const flag = globalThis as WithFlag
  const done = flag[REGISTERED]
  if (done === true) return Promise.resolve()
  if (done) return done
  const registering = Promise.all([import('tsx/esm/api'), import('tsx/cjs/api')]).then(([esm, cjs]) => {
    esm.register()
    cjs.register()
  })
  flag[REGISTERED] = registering
  return registering
}
