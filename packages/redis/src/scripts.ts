import { createHash } from 'node:crypto'
import type { Redis } from 'ioredis'

/*
 * Every write to a partition is fenced: the first thing each script does is compare the caller's
 * owner token with the `@owner` field of the partition's state hash, and refuse with an error
 * starting `ESK_FENCED none` (no owner: the data was lost) or `ESK_FENCED other` unless they are equal. The state hash is one key, so a flush or an eviction
 * removes the owner together with the data, and a write from before it can never re-create a
 * partition that looks whole.
 *
 * KEYS[1] state hash, KEYS[2] unlogged outcomes hash, KEYS[3] their insertion order (list).
 */
const FENCE = `
local owner = redis.call('HGET', KEYS[1], '@owner')
if not owner then
  return redis.error_reply('ESK_FENCED none: the partition has no owner; its state was flushed or evicted')
end
if owner ~= ARGV[1] then
  return redis.error_reply('ESK_FENCED other: another processor owns the partition')
end
`

/**
 * Most values passed to one `redis.call` through `unpack`, which Redis's Lua limits to a few
 * thousand. Even, so field/value pairs never straddle two calls.
 */
const LUA_CHUNK = 1000

/**
 * Saves one partition's write atomically and only forward, then publishes its replies.
 *
 * ARGV[1]     owner token
 * ARGV[2]     number of snapshots n
 * ARGV[3..5]  checkpoint offset, command position, schema version
 * ARGV[6]     `1` to mark the partition ready (recovered)
 * ARGV[7]     unlogged window: most unlogged outcomes kept
 * ARGV[8]     number of unlogged outcomes m
 * ARGV[9..]   n quintuples (aggregate id, offset, snapshot JSON, expected offset, window text),
 *             then m pairs (command key, outcome JSON), then pairs (reply channel, message) to the end
 *
 * A snapshot is written when none is stored or its offset is >= the stored one (equal offsets mean
 * the same events, e.g. a refusal added nothing but was decided on it). Its de-duplication window
 * goes in two fields, one entry per line: the older entries in `w:<id>`, the newest in `t:<id>`.
 * With an empty expected offset the text is the whole window: it goes in `w:` and `t:` is emptied.
 * Otherwise the text holds only the newest entries, and goes in `t:` alone; the older ones are
 * those already in `w:`, which the store wrote with the snapshot whose offset is the expected one.
 * A window changes by an entry or two a command, so most saves send a few entries instead of the
 * whole window (see `RedisSnapshotStore.save`). When any aggregate's stored offset is not the one
 * its text expects, `w:` may hold some other window, so the script writes nothing at all and
 * returns those aggregates' ids (a list), and the store sends the write again with whole windows.
 * The script never edits a stored text: that cost Redis more than receiving the text whole.
 *
 * Each aggregate appears at most once in a write (see `checkWrite`): its stored offset is read
 * once, before anything is written. Reads and writes go in as few HMGET and HSET calls as Lua
 * allows ({@link LUA_CHUNK} values each), not one per aggregate: a call from Lua costs Redis more
 * than the fields it carries.
 *
 * The checkpoint takes the larger offset and the larger command position, each on its own, and
 * the new schema version. An unlogged outcome is kept only if none is stored for its command (the
 * first outcome is the answer), and the oldest go once there are more than the window. Replies are
 * published last, so a client never hears an outcome that is not recorded. Offsets are integers
 * below 2^53, exact as Lua numbers (doubles); they are compared with tonumber() but always written
 * back as the original strings: Lua would format a large number as 1e+15 and lose digits.
 * Returns the number of snapshots written, or the list of stale aggregates described above.
 */
export const SAVE_SCRIPT =
  FENCE +
  `
local n = tonumber(ARGV[2])
local m = tonumber(ARGV[8])
local function chunked(command, args)
  local results = {}
  for from = 1, #args, ${LUA_CHUNK} do
    local reply = redis.call(command, KEYS[1], unpack(args, from, math.min(from + ${LUA_CHUNK} - 1, #args)))
    if type(reply) == 'table' then
      for k = 1, #reply do results[#results + 1] = reply[k] end
    end
  end
  return results
end
local fields = {}
for i = 0, n - 1 do
  fields[i + 1] = 'o:' .. ARGV[9 + 5 * i]
end
fields[n + 1] = '@offset'
fields[n + 2] = '@position'
local stored = chunked('HMGET', fields)
local stale = {}
for i = 0, n - 1 do
  local expected = ARGV[12 + 5 * i]
  if expected ~= '' and stored[i + 1] ~= expected then stale[#stale + 1] = ARGV[9 + 5 * i] end
end
if #stale > 0 then return stale end
local offset = ARGV[3]
local position = ARGV[4]
if stored[n + 1] and tonumber(stored[n + 1]) > tonumber(offset) then offset = stored[n + 1] end
if stored[n + 2] and tonumber(stored[n + 2]) > tonumber(position) then position = stored[n + 2] end
local writes = { '@offset', offset, '@position', position, '@schema', ARGV[5] }
if ARGV[6] == '1' then
  writes[#writes + 1] = '@ready'
  writes[#writes + 1] = '1'
end
local written = 0
for i = 0, n - 1 do
  local at = 9 + 5 * i
  local before = stored[i + 1]
  if (not before) or tonumber(ARGV[at + 1]) >= tonumber(before) then
    local id = ARGV[at]
    local w = #writes
    writes[w + 1] = 's:' .. id
    writes[w + 2] = ARGV[at + 2]
    writes[w + 3] = 'o:' .. id
    writes[w + 4] = ARGV[at + 1]
    writes[w + 5] = 't:' .. id
    if ARGV[at + 3] == '' then
      writes[w + 6] = ''
      writes[w + 7] = 'w:' .. id
      writes[w + 8] = ARGV[at + 4]
    else
      writes[w + 6] = ARGV[at + 4]
    end
    written = written + 1
  end
end
chunked('HSET', writes)
local replies = 9 + 5 * n + 2 * m
for k = 9 + 5 * n, replies - 1, 2 do
  if redis.call('HSETNX', KEYS[2], ARGV[k], ARGV[k + 1]) == 1 then
    redis.call('RPUSH', KEYS[3], ARGV[k])
  end
end
local window = tonumber(ARGV[7])
while redis.call('LLEN', KEYS[3]) > window do
  redis.call('HDEL', KEYS[2], redis.call('LPOP', KEYS[3]))
end
for k = replies, #ARGV, 2 do
  redis.call('PUBLISH', ARGV[k], ARGV[k + 1])
end
return written
`

/**
 * Drops a partition's snapshots, checkpoint and unlogged outcomes, keeping its owner: the start of
 * a rebuild. ARGV[1] owner token.
 */
export const RESET_SCRIPT =
  FENCE +
  `
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3])
redis.call('HSET', KEYS[1], '@owner', ARGV[1])
return 1
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
