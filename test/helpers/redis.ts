/**
 * A throwaway redis-server for tests and benchmarks: a free loopback port, a temp folder, stopped
 * (and the folder removed) by `stop()`. Without redis-server the Redis tests skip locally with
 * `redisSkipReason()`, and fail in CI (CI installs it: see .ci/run).
 */
import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { createServer, connect } from 'node:net'
import path from 'node:path'
import { tempDir } from './cli.ts'

export const REDIS_SERVER = process.env.PTR_REDIS_SERVER ?? 'redis-server'

let available: boolean | undefined
export function haveRedisServer(): boolean {
  available ??= spawnSync(REDIS_SERVER, ['--version'], { stdio: 'ignore' }).status === 0
  return available
}

/** Why the Redis tests cannot run here (undefined: they can; in CI they always must). */
export function redisSkipReason(): string | undefined {
  if (haveRedisServer() || process.env.CI) return undefined
  return 'redis-server is not installed: the Redis tests need it (apt-get install -y redis-server), then run npm test again'
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0))
    })
  })
}

export interface RedisServerOptions {
  /** requirepass. */
  password?: string
  /** AOF with fsync on every write (the settings the docs ask for). @default false */
  persistent?: boolean
  port?: number
  dir?: string
  /** Serve TLS only, with a certificate for 127.0.0.1 from a throwaway CA (see `caFile`). @default false */
  tls?: boolean
}

export interface TestRedis {
  readonly port: number
  readonly dir: string
  /** redis://[:password@]127.0.0.1:PORT/0 (rediss:// with `tls`) */
  readonly url: string
  /** With `tls`: the PEM file of the CA that signed the server's certificate. */
  readonly caFile: string | undefined
  /** Stops the server (SHUTDOWN semantics from SIGTERM: AOF is flushed), keeping the folder. */
  kill(signal?: NodeJS.Signals): Promise<void>
  /** Starts it again on the same port and folder. */
  restart(): Promise<void>
  /** Stops it and removes the folder. */
  stop(): Promise<void>
}

async function waitForPort(port: number, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 10_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server exited (${child.exitCode}):\n${log()}`)
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.destroy()
        resolve(true)
      })
      socket.on('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > deadline) throw new Error(`redis-server did not listen on ${port}:\n${log()}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** A CA and a server certificate for 127.0.0.1 it signed, in `dir`; returns the CA's PEM file. */
function makeCertificates(dir: string): string {
  const openssl = (...args: string[]) => {
    const result = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' })
    if (result.status !== 0) throw new Error(`openssl ${args.join(' ')} failed (is openssl installed?):\n${result.stderr}`)
  }
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=ptr test CA')
  openssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1')
  writeFileSync(path.join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\n')
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'server.ext')
  return path.join(dir, 'ca.pem')
}

export async function startRedis(options: RedisServerOptions = {}): Promise<TestRedis> {
  const port = options.port ?? (await freePort())
  const temp = options.dir ? { dir: options.dir, cleanup: () => undefined } : tempDir('ptr-redis-')
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', temp.dir, '--save', '', '--daemonize', 'no', '--loglevel', 'warning']
  if (options.persistent) args.push('--appendonly', 'yes', '--appendfsync', 'always')
  else args.push('--appendonly', 'no')
  if (options.password) args.push('--requirepass', options.password)
  const caFile = options.tls ? makeCertificates(temp.dir) : undefined
  if (caFile) {
    // Replace the plain port with a TLS one.
    args.splice(0, 2, '--port', '0', '--tls-port', String(port))
    args.push('--tls-cert-file', path.join(temp.dir, 'server.pem'), '--tls-key-file', path.join(temp.dir, 'server.key'), '--tls-ca-cert-file', caFile, '--tls-auth-clients', 'no')
  }
  let child!: ChildProcess
  let output = ''
  const launch = async () => {
    output = ''
    child = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()))
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()))
    await waitForPort(port, child, () => output)
  }
  const kill = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((r) => child.once('exit', r))
    child.kill(signal)
    await exited
  }
  await launch()
  return {
    port,
    dir: temp.dir,
    url: `${caFile ? 'rediss' : 'redis'}://${options.password ? `:${options.password}@` : ''}127.0.0.1:${port}/0`,
    caFile,
    kill,
    restart: launch,
    async stop() {
      await kill('SIGKILL')
      temp.cleanup()
    },
  }
}
