import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { PROFILES, Run } from '../src/harness.js'
import { spawnNode } from '../src/processes.js'

// A processor or client that dies by itself is a finding of its own (no esk process should), so
// the report lists it; the faults' own kills, by signal, are not listed.
describe('crashes of a run', () => {
  it('lists a process that exited by itself with an error code, with its log, and not one killed by a signal', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'esk-faults-crash-'))
    const run = new Run('kill', PROFILES.short!, 1, { brokers: ['127.0.0.1:1'], stackDir: dir, workDir: dir })
    const log = (name: string) => `${run.config.dir}/logs/${name}.log`
    const crashed = spawnNode('processor-1', '-e', ["console.error('ConfigurationError: boom'); process.exit(3)"], log('processor-1'))
    const killed = spawnNode('processor-2', '-e', ['setTimeout(() => undefined, 60000)'], log('processor-2'))
    const clean = spawnNode('client-0', '-e', ['process.exit(0)'], log('client-0'))
    run.processors.push(crashed, killed)
    run.clients.push(clean)
    killed.signal('SIGKILL')
    await Promise.all([crashed.exited, killed.exited, clean.exited])
    expect(run.crashes()).toEqual([{ process: 'processor-1', code: 3, log: log('processor-1'), error: 'ConfigurationError: boom' }])
  })
})
