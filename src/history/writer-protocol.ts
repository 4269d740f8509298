import path from 'node:path'
import type { MessagePort } from 'node:worker_threads'
import type { FlowRunRecord } from '../render/run-history.ts'

/**
 * What crosses between the recorder (main thread) and the history's writer thread: only plain
 * data. Task run events travel as one flat array of primitives per batch ("ops"), each op a code
 * followed by a fixed number of fields, so the main thread allocates no object per event and
 * the batch clones fast. A task run is named by its place (`place`: 0, 1, 2, ... in the order the
 * recorder first saw them, which is also its row's `seq`), its id sent once, with OP_TASK: a
 * small integer clones as itself, where an id is 36 characters to copy, and hash, per event.
 * Strings that repeat from run to run (root flow run id, task key, task name, map id) are sent
 * when they change and as `SAME` (0) otherwise.
 */

/** Values up to this size (serialized) live in their row; bigger ones in files under `<localDir>/results/`. */
export const INLINE_VALUE_BYTES = 64 * 1024

/** Where the values too big for a row of history file `file` go: `<localDir>/results/`. */
export const resultsDirOf = (file: string): string => path.join(path.dirname(file), 'results')

/** A field that is the same as in the previous op that had one. */
export const SAME = 0

/** A new task run (its first state follows): `place, id, root, flowRun, name, key, taskName, tags, map, mapIndex, upstream`. */
export const OP_TASK = 1
/**
 * A state whose name is its type, with no message and no slot (most are): `place, code, time`.
 * `code` is the type's index in {@link STATE_TYPES} plus 8 × the run's attempt; `time` is ms
 * since the batch's `base` (a small integer, which clones without an allocation).
 */
export const OP_STATE = 2
/** A Running state like that, with the slot the attempt holds: `place, code, time, slot` (see WriteBatch.slots). */
export const OP_RUNNING = 3
/** Any other state: `place, code, name, time, message, slot` (name `SAME` when it is the type; message and slot may be null). */
export const OP_STATE_FULL = 4
/** The error record of a settled run: `place, record`. */
export const OP_ERROR = 5
/**
 * A completed run's value: `place, value, identity, note`. OP_VALUE carries the value itself
 * (undefined, a boolean, null, a finite number or a string: the writer encodes it), OP_BYTES its
 * serialized bytes. `note` says why it cannot be matched on resume (when `identity` is null). A
 * value too big for a row goes to a file of the run's own, `<root id>-<seq>.bin`: a file is never
 * rewritten, so a row keeps the value its run produced.
 */
export const OP_VALUE = 6
export const OP_BYTES = 7
/** The common OP_VALUE: one with an identity, no note and no file name: `place, value, identity`. */
export const OP_VALUE_ID = 8
/** Why a run's value is not kept: `place, reason`. */
export const OP_NOT_KEPT = 9
/** A cache entry holding the value of the op before: `key, created, expires, source`. */
export const OP_CACHE = 10
/** A log line of a task run: `place, timestamp, level, message`. */
export const OP_LOG = 11
/**
 * A run the cache stood in for, whose row keeps the entry's value: `place, key, created, identity`.
 * The writer copies the entry's bytes (or file name) into the row, if the entry is still the one
 * written at `created` (else the row says its value is gone): the value is not serialized again.
 */
export const OP_CACHED = 12

/** How many fields follow each op's code. */
export const OP_FIELDS: readonly number[] = [0, 11, 3, 4, 6, 2, 4, 4, 3, 2, 4, 4, 4]
/** `code` of a state (see OP_STATE). */
export const stateCode = (typeIndex: number, attempt: number): number => typeIndex + 8 * attempt

export const STATE_TYPES = ['Scheduled', 'Pending', 'Running', 'Completed', 'Failed', 'Crashed', 'Cancelled'] as const
export const STATE_TYPE_CODE: Readonly<Record<string, number>> = Object.fromEntries(STATE_TYPES.map((type, i) => [type, i]))

/** One row to write: the run's current record (the newest write wins). */
export interface FlowRunWrite {
  id: string
  rootId: string
  record: FlowRunRecord
  created: number
  /** The flow file `ptr run` loaded (absolute), for `ptr flow-runs retry`; root flow runs only. */
  file?: string | undefined
  /** The flow run's value, once it completed and its value was kept: in the row only, up to INLINE_VALUE_BYTES (a bigger one is not kept). */
  result?: Uint8Array | undefined
}

/** One batch: everything that changed since the last one, written by the writer in one go. */
export interface WriteBatch {
  /** 1, 2, 3, ...: the writer stores the last one it finished in the shared state's APPLIED slot. */
  seq: number
  ops: unknown[]
  /** Epoch ms that states' times count from. */
  base: number
  /**
   * Slots (`thread 1`) first named in this batch: a state's slot is its index among all the
   * slots of the batches so far, or (past the first 256) its name.
   */
  slots: string[]
  /** Flow runs whose record changed (few: their records are built on the main thread). */
  flows: FlowRunWrite[]
  /**
   * What to write of the task runs that have not settled: `none` (the batch was sent because
   * many ops were waiting: only settled runs are written), `started` (the 250 ms timer: runs that
   * started too, not those only Pending), `all` (close: everything).
   */
  unsettled: 'none' | 'started' | 'all'
  /** The last batch: the writer closes its connection once it is written. */
  last: boolean
}

/** What the writer thread is started with. */
export interface WriterData {
  file: string
  /** An Int32Array over a SharedArrayBuffer: see the slots below. */
  state: Int32Array
  /** Where the writer posts the one error that stops it. */
  errors: MessagePort
  /** How many log lines a task run keeps (RunHistory.MAX_LOGS). */
  maxLogs: number
}

/** The shared state's slots: the last batch written, and whether writing failed (1). */
export const APPLIED = 0
export const FAILED = 1
/** Counts the transactions written: the main thread waiting in close() sees the writer progress. */
export const PROGRESS = 2
export const STATE_SLOTS = 3
