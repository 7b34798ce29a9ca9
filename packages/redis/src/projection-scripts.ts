/*
 * The scripts of the projection store. KEYS[1] is always the projection's meta hash; a generation
 * exists while its `g:<id>` field does, and every write to it first checks that, so a generation
 * dropped by a swap or a reset refuses its old writers at once (its keys are deleted afterwards).
 * Errors that start with `ESK_FENCED` are fences; no script writes anything before its checks pass.
 */

/** Forgets generation `id` in the meta hash (its upgrade entry too). Not a script on its own. */
const FORGET = `
local function forget(meta, id)
  local info = redis.call('HGET', meta, 'g:' .. id)
  if not info then return end
  local version = string.match(info, '"version":(%d+)')
  if version and redis.call('HGET', meta, 'u:' .. version) == id then redis.call('HDEL', meta, 'u:' .. version) end
  redis.call('HDEL', meta, 'g:' .. id)
  if redis.call('HGET', meta, 'live') == id then redis.call('HDEL', meta, 'live') end
end
`

/**
 * Creates or finds a generation. ARGV: version, mode (initial|upgrade|rebuild|reset), replacing
 * ('' or an id: a reset only while that one is live), now (ms). Returns { id, its JSON, the id of a
 * generation dropped (its keys must be deleted) or '' }.
 */
export const CREATE_SCRIPT =
  FORGET +
  `
local meta = KEYS[1]
local version, mode, replacing, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local live = redis.call('HGET', meta, 'live')
if live and (mode == 'initial' or (mode == 'reset' and replacing ~= '' and replacing ~= live)) then
  return {live, redis.call('HGET', meta, 'g:' .. live), ''}
end
if mode == 'upgrade' then
  local existing = redis.call('HGET', meta, 'u:' .. version)
  if existing and redis.call('HEXISTS', meta, 'g:' .. existing) == 1 then
    return {existing, redis.call('HGET', meta, 'g:' .. existing), ''}
  end
end
local id = tostring(redis.call('HINCRBY', meta, 'next', 1))
local info = '{"id":' .. id .. ',"version":' .. version .. ',"purpose":"' .. mode .. '","createdAt":' .. now .. '}'
redis.call('HSET', meta, 'g:' .. id, info)
if mode == 'upgrade' then redis.call('HSET', meta, 'u:' .. version, id) end
local dropped = ''
if mode == 'initial' or mode == 'reset' then
  if live then
    forget(meta, live)
    dropped = live
  end
  redis.call('HSET', meta, 'live', id)
end
return {id, info, dropped}
`

/** Makes ARGV[2] live if ARGV[1] ('' for none) still is; drops the old one. Returns 1, or 0 changing nothing. */
export const SWAP_SCRIPT =
  FORGET +
  `
local meta = KEYS[1]
local from, to = ARGV[1], ARGV[2]
local live = redis.call('HGET', meta, 'live')
if (from == '' and live) or (from ~= '' and live ~= from) then return 0 end
if redis.call('HEXISTS', meta, 'g:' .. to) == 0 then return 0 end
if live then forget(meta, live) end
local info = redis.call('HGET', meta, 'g:' .. to)
local version = string.match(info, '"version":(%d+)')
if version and redis.call('HGET', meta, 'u:' .. version) == to then redis.call('HDEL', meta, 'u:' .. version) end
redis.call('HSET', meta, 'live', to)
return 1
`

/** Forgets generation ARGV[1] unless it is live. Returns 1, 0 when it is live, -1 when it did not exist. */
export const DROP_SCRIPT =
  FORGET +
  `
local meta = KEYS[1]
if redis.call('HEXISTS', meta, 'g:' .. ARGV[1]) == 0 then return -1 end
if redis.call('HGET', meta, 'live') == ARGV[1] then return 0 end
forget(meta, ARGV[1])
return 1
`

/**
 * Makes ARGV[3] the owner of lane ARGV[2] of generation ARGV[1]; returns its stored position or
 * false. KEYS: meta, owners, positions.
 */
export const ACQUIRE_SCRIPT = `
if redis.call('HEXISTS', KEYS[1], 'g:' .. ARGV[1]) == 0 then
  return redis.error_reply('ESK_FENCED the generation no longer exists')
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return redis.call('HGET', KEYS[3], ARGV[2])
`

/**
 * Applies a lane's write atomically. KEYS: meta, positions, owners, dead letters, then the data
 * keys the guards and changes name (by index into KEYS). ARGV:
 *
 *   1 generation, 2 lane, 3 token, 4 from ('' when none is stored), 5 to,
 *   6 guards g, 7 changes c, 8 dead letters d,
 *   then g guards of 5 (kind get|hget|zscore, key index, field or member, present 0|1, value),
 *   then c changes of 4 (op, key index, a, b), then d dead letters (JSON).
 *
 * Checks, before writing anything: the generation exists, the token owns the lane, the stored
 * position is `from` (else ESK_FENCED); every guard still holds (else {'conflict', index}); no
 * increment adds to a stored value that is not a number (else {'invalid', index, what}). Then
 * applies the changes in order, moves the position, appends the dead letters: {'applied'}.
 * Increments are computed here and written with 17 significant digits: exact for integers below
 * 2^53, and a double parses back to the same double.
 */
export const APPLY_SCRIPT = `
local meta, positions, owners, dead = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local gen, lane, token, from, to = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local g, c, d = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
if redis.call('HEXISTS', meta, 'g:' .. gen) == 0 then
  return redis.error_reply('ESK_FENCED the generation no longer exists (replaced by a reset or a rebuild)')
end
if redis.call('HGET', owners, lane) ~= token then
  return redis.error_reply('ESK_FENCED another consumer owns the lane')
end
local stored = redis.call('HGET', positions, lane)
if (from == '' and stored) or (from ~= '' and stored ~= from) then
  return redis.error_reply('ESK_FENCED the lane is at position ' .. tostring(stored) .. ', not ' .. from)
end
local i = 9
for n = 1, g do
  local kind, key, sub, present, value = ARGV[i], KEYS[tonumber(ARGV[i + 1])], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local current
  if kind == 'get' then current = redis.call('GET', key)
  elseif kind == 'hget' then current = redis.call('HGET', key, sub)
  else current = redis.call('ZSCORE', key, sub) end
  if (present == '0' and current) or (present == '1' and current ~= value) then return {'conflict', n - 1} end
  i = i + 5
end
local first = i
local touched = {}
for n = 1, c do
  local op, key, a = ARGV[i], KEYS[tonumber(ARGV[i + 1])], ARGV[i + 2]
  if op == 'incr' and not touched[key] then
    local v = redis.call('GET', key)
    if v and not tonumber(v) then return {'invalid', n - 1, key} end
  elseif op == 'hincr' and not touched[key] and not touched[key .. '\\0' .. a] then
    local v = redis.call('HGET', key, a)
    if v and not tonumber(v) then return {'invalid', n - 1, key .. ' ' .. a} end
  end
  if op == 'set' or op == 'del' or op == 'incr' or op == 'hclear' then touched[key] = true
  elseif op == 'hset' or op == 'hdel' or op == 'hincr' then touched[key .. '\\0' .. a] = true end
  i = i + 4
end
local function number(text)
  return string.format('%.17g', text)
end
i = first
for n = 1, c do
  local op, key, a, b = ARGV[i], KEYS[tonumber(ARGV[i + 1])], ARGV[i + 2], ARGV[i + 3]
  if op == 'set' then redis.call('SET', key, a)
  elseif op == 'del' or op == 'hclear' or op == 'zclear' then redis.call('DEL', key)
  elseif op == 'incr' then
    local v = redis.call('GET', key)
    redis.call('SET', key, number((v and tonumber(v) or 0) + tonumber(a)))
  elseif op == 'hset' then redis.call('HSET', key, a, b)
  elseif op == 'hdel' then redis.call('HDEL', key, a)
  elseif op == 'hincr' then
    local v = redis.call('HGET', key, a)
    redis.call('HSET', key, a, number((v and tonumber(v) or 0) + tonumber(b)))
  elseif op == 'zadd' then redis.call('ZADD', key, b, a)
  elseif op == 'zrem' then redis.call('ZREM', key, a)
  elseif op == 'zincr' then redis.call('ZINCRBY', key, b, a)
  end
  i = i + 4
end
redis.call('HSET', positions, lane, to)
for n = 1, d do
  redis.call('RPUSH', dead, ARGV[i])
  i = i + 1
end
return {'applied'}
`
