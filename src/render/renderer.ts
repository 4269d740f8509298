import type { RunEvent } from '../engine/events.ts'
import type { State } from '../engine/states.ts'
import type { RunRecorder } from './recorder.ts'

/**
 * What every renderer does. The engine only emits run events; a renderer listens to them,
 * draws while the run goes on, and prints the summary at the end.
 */
export interface Renderer {
  /** Called for every run event, on the engine's hot path: keep it cheap. */
  onEvent(event: RunEvent): void
  /** Starts drawing, if the renderer draws. */
  start(): Promise<void>
  /** The run is over: stop drawing, print the summary. */
  end(recorder: RunRecorder, flowState: State | undefined): Promise<void>
  /** Gives the terminal back at once (cursor visible), for a forced exit. */
  abort(): void
}
