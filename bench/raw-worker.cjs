// The raw workerpool peer: a plain JS worker with a no-op and a CPU-bound method.
const workerpool = require('workerpool')
workerpool.worker({
  noop: (i) => i,
  spin: (ms) => {
    const end = Date.now() + ms
    let n = 0
    while (Date.now() < end) n++
    return n
  },
})
