// The import rules of ptr's sources, checked by `npm run lint` (part of `npm test`).
// Layers read top-down: cli → worker / settings / render / history → runners / queue / limits → engine → errors.
// A folder may import its own layer and the layers below it, never a layer above, and no import
// circle is allowed anywhere (type-only imports count: they are circles in what a reader must know).
const layer = (name) => `(^|/)src/(${name})(/|\\.ts$)`

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'An import circle: break it by moving the shared part down a layer, or invert it with a registration (src/engine/providers.ts).',
      from: {},
      to: { circular: true },
    },
    {
      name: 'errors-imports-nothing',
      severity: 'error',
      comment: 'src/errors.ts is the bottom layer: it imports nothing of ptr.',
      from: { path: layer('errors') },
      to: { path: '(^|/)src/' },
    },
    {
      name: 'engine-below-runners',
      severity: 'error',
      comment: 'The engine knows nothing of runners, queues, workers, settings, terminals or the CLI: invert with src/engine/providers.ts or an interface.',
      from: { path: layer('engine') },
      to: { path: layer('runners|queue|limits|worker|settings|render|history|cli|index') },
    },
    {
      name: 'runners-queue-below-services',
      severity: 'error',
      comment: 'Runners, queues and the limits (which live in the queue\'s store) sit under workers, settings, renderers and the CLI.',
      from: { path: layer('runners|queue|limits') },
      to: { path: layer('worker|settings|render|history|cli|index') },
    },
    {
      name: 'services-below-cli',
      severity: 'error',
      comment: 'Workers, settings, renderers and the run history sit under the CLI.',
      from: { path: layer('worker|settings|render|history') },
      to: { path: layer('cli|index') },
    },
    {
      name: 'no-entry-inside',
      severity: 'error',
      comment: 'src/index.ts is the public entry; modules inside ptr import what they need directly.',
      from: { path: '(^|/)src/', pathNot: '(^|/)src/index\\.ts$' },
      to: { path: '(^|/)src/index\\.ts$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.mjs', '.json'] },
  },
}
