import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const exampleDir = fileURLToPath(new URL('..', import.meta.url))
const built = existsSync(new URL('../../../packages/core/dist/index.js', import.meta.url))

// Tests elsewhere run against sources; this one runs what an application installs: the built
// packages, resolved by Node from the application's folder, with no driver passed.
describe.runIf(built)('createEsk without a driver, from the built packages', () => {
  it('loads the embedded driver and handles a command', async () => {
    const script = `
      import { createEsk } from '@esk/core'
      import { Account, OpenAccount } from './dist/domain.js'
      const app = await createEsk({ aggregates: [Account] })
      const { id, version } = await app.repository(Account).save(new OpenAccount('ada', 5, 0))
      const found = await app.repository(Account).get(id, { atLeastVersion: version })
      console.log(JSON.stringify({ version, balance: found.state.balance }))
      await app.close()
    `
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
      cwd: exampleDir,
    })
    expect(JSON.parse(stdout.trim())).toEqual({ version: 1, balance: 5 })
  })
})
