import { createHash } from 'node:crypto'
import type { Redis } from 'ioredis'

/**
 * Saves one partition's write atomically and only forward.
 *
 * KEYS[1]     snapshots hash (aggregate id -> snapshot JSON)
 * KEYS[2]     offsets hash (aggregate id -> offset of the stored snapshot)
 * KEYS[3]     checkpoint hash (offset, commandPosition, schemaVersion)
 * KEYS[4..]   one outcome key per outcome, in ARGV order
 * ARGV[1]     number of snapshots n
 * ARGV[2..4]  checkpoint offset, commandPosition, schemaVersion
 * ARGV[5]     outcome time to live, ms
 * ARGV[6..]   n triples (aggregate id, offset, snapshot JSON), then one outcome JSON per outcome key
 *
 * A snapshot is written when none is stored or its offset is >= the stored one (equal offsets mean
 * identical content: a replayed save). The checkpoint takes the larger offset and the larger
 * command position, each on its own, and the new schema version. Offsets are integers below 2^53,
 * exact as Lua numbers (doubles). Numbers are compared with tonumber() but always written back as
 * the original strings: Lua would format a large number as 1e+15 and lose digits.
 * Returns the number of snapshots written.
 */
export const SAVE_SCRIPT = `
local n = tonumber(ARGV[1])
local written = 0
for i = 0, n - 1 do
  local id = ARGV[6 + 3 * i]
  local offset = ARGV[7 + 3 * i]
  local stored = redis.call('HGET', KEYS[2], id)
  if (not stored) or tonumber(offset) >= tonumber(stored) then
    redis.call('HSET', KEYS[1], id, ARGV[8 + 3 * i])
    redis.call('HSET', KEYS[2], id, offset)
    written = written + 1
  end
end
local current = redis.call('HMGET', KEYS[3], 'offset', 'commandPosition')
local offset = ARGV[2]
local position = ARGV[3]
if current[1] and tonumber(current[1]) > tonumber(offset) then offset = current[1] end
if current[2] and tonumber(current[2]) > tonumber(position) then position = current[2] end
redis.call('HSET', KEYS[3], 'offset', offset, 'commandPosition', position, 'schemaVersion', ARGV[4])
local first = 6 + 3 * n
for k = 4, #KEYS do
  redis.call('SET', KEYS[k], ARGV[first + k - 4], 'PX', ARGV[5])
end
return written
`

/** Runs a script by its SHA (EVALSHA, falling back to EVAL once per connection); the key count comes first. */
export type ScriptCall = (numberOfKeys: number, ...keysAndArgs: string[]) => Promise<unknown>

/**
 * Defines `lua` as a command on `client` and returns a typed call to it. The command's name carries
 * the script's hash, so two versions of this package sharing a client never run each other's script.
 */
export function defineScript(client: Redis, purpose: string, lua: string): ScriptCall {
  const name = `esk_${purpose}_${createHash('sha1').update(lua).digest('hex').slice(0, 12)}`
  // defineCommand adds the method to this instance only; ioredis types cannot know it.
  const commands = client as unknown as Record<string, ScriptCall | undefined>
  if (typeof commands[name] !== 'function') client.defineCommand(name, { lua })
  const command = commands[name] as ScriptCall
  return (numberOfKeys, ...keysAndArgs) => command.call(client, numberOfKeys, ...keysAndArgs)
}
