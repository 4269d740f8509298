import type { LogEvent, LogLevel } from './events.ts'
import { runEvents } from './events.ts'

/** Where log lines of a run go. Pool and task workers replace it to send lines elsewhere. */
export type LogSink = (event: LogEvent) => void

const SINK = Symbol.for('ptr.logSink')
type WithSink = { [SINK]?: LogSink }
const defaultSink: LogSink = (event) => runEvents.emit(event)

export function setLogSink(sink: LogSink | undefined): void {
  ;(globalThis as WithSink)[SINK] = sink
}

/** The run a log line is attributed to. */
export interface LogTarget {
  readonly taskRunId?: string | undefined
  readonly taskRunName?: string | undefined
  readonly flowRunId?: string | undefined
}

export function emitRunLog(target: LogTarget, level: LogLevel, message: string, source: 'console' | 'logger'): void {
  ;((globalThis as WithSink)[SINK] ?? defaultSink)({
    kind: 'log',
    level,
    message,
    source,
    timestamp: Date.now(),
    taskRunId: target.taskRunId,
    taskRunName: target.taskRunName,
    flowRunId: target.flowRunId,
  })
}
