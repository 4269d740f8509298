/**
 * The bundle of the user's modules made for a run (`ptr run` bundles the flow file once): a pool
 * worker asked for a task of one of `modules` imports the bundle, plain JavaScript, instead of
 * that module through tsx. Workers started after it was made read it from the environment they
 * inherit; workers started before it (early, see early-start.ts) are told with a preload call.
 */
export interface ModuleBundle {
  /** File URL of the bundle (an ES module). */
  readonly url: string
  /** File URLs of the user's modules it holds (each evaluated once, when the bundle is imported). */
  readonly modules: readonly string[]
  /** Whether it imports TypeScript left outside it (ptr's own sources, a package's .ts): then tsx is registered first. */
  readonly typescript: boolean
}

/** The environment variable that carries the bundle (JSON) to workers started after it was made. */
const BUNDLE_ENV = 'PTR_MODULE_BUNDLE'

let bundle: ModuleBundle | undefined

/** Makes `made` the bundle that workers use for its modules; returns the function that stops that. */
export function useModuleBundle(made: ModuleBundle): () => void {
  const plain: ModuleBundle = { url: made.url, modules: [...made.modules], typescript: made.typescript }
  bundle = plain
  process.env[BUNDLE_ENV] = JSON.stringify(plain)
  return () => {
    if (bundle !== plain) return
    bundle = undefined
    delete process.env[BUNDLE_ENV]
  }
}

/**
 * Forgets a bundle this process inherited through the environment (a `ptr run` started from a
 * task of another run): only a process's own run decides which bundle its workers import.
 */
export function forgetInheritedBundle(): void {
  if (bundle === undefined) delete process.env[BUNDLE_ENV]
}

/** The bundle in use in this process (set with useModuleBundle or knowModuleBundle, or inherited through the environment). */
export function moduleBundle(): ModuleBundle | undefined {
  if (bundle === undefined && process.env[BUNDLE_ENV]) {
    try {
      bundle = JSON.parse(process.env[BUNDLE_ENV]) as ModuleBundle
    } catch {
      bundle = undefined
    }
  }
  return bundle
}

/** In a worker started before the bundle was made: the bundle it is told about (a preload call). */
export function knowModuleBundle(told: ModuleBundle): void {
  bundle ??= told
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
