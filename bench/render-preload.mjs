// Loaded with --import before tsx by render.bench.ts's child: the same preload `ptr run` does.
import { preloadDependencies } from '../bin/preload.js'

await preloadDependencies()
