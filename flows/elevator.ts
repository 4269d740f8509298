/**
 * The classic: an elevator stops at floors 10 → 1. Each stop takes a short while, and at most
 * three stops are in progress at once.
 *   ptr run flows/elevator.ts
 */
import { ThreadPoolTaskRunner, flow, task, wait } from 'ptr'

export const stopAtFloor = task(
  { name: 'stop_at_floor', taskRunName: 'stop_at_floor-{0}' },
  async (floor: number, seconds: number = 0.3) => {
    console.log(`elevator stopping at floor ${floor}`)
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000))
    return floor
  },
)

export const elevator = flow(
  { name: 'elevator', taskRunner: new ThreadPoolTaskRunner({ maxWorkers: 3 }) },
  async ({ floors = 10, seconds = 0.3 }: { floors?: number; seconds?: number }) => {
    const stops = []
    for (let floor = floors; floor > 0; floor--) stops.push(stopAtFloor.submit(floor, seconds))
    const { notDone } = await wait(stops)
    return notDone.length === 0 ? `visited ${stops.length} floors` : `${notDone.length} floors not visited`
  },
)

export default elevator
