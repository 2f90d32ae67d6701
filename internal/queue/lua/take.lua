-- take: settle finished runs, promote due delayed jobs, reclaim expired
-- leases, then lease up to MAX due jobs.
-- ARGV: worker, lease_ms, max, nsettle, result_ttl_s, done_max, dead_max,
-- then 6 fields a settle: id, token, outcome (d=done r=retry f=fail
-- c=cancelled q=requeue), result, error, delay_ms.
-- Returns { now_ms, next_due_ms, flags, n, then 11 fields a job: id, token,
-- attempts, type, payload, max_attempts, timeout, callback, trace, created,
-- priority }. flags has one letter a settle: o applied, f applied and
-- final, s stale (refused).
local worker = ARGV[1]
local lease = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local nsettle = tonumber(ARGV[4])
local ttl = tonumber(ARGV[5])
local done_max = tonumber(ARGV[6])
local dead_max = tonumber(ARGV[7])
local ttl_ms = ARGV[5] .. '000'

local flags = {}
local unlease = {}
local done = {}
local stale = 0
for i = 0, nsettle - 1 do
  local b = 8 + i * 6
  local id, tok, kind = ARGV[b], ARGV[b + 1], ARGV[b + 2]
  local jk = P .. 'job:' .. id
  local h = redis.call('HMGET', jk, 'token', 'attempts', 'max_attempts',
    'priority', 'cancel', 'callback')
  local cb = h[6] and h[6] ~= ''
  if h[5] and kind == 'q' then kind = 'c' end
  if h[1] ~= tok then
    stale = stale + 1
    flags[#flags + 1] = 's'
  else
    unlease[#unlease + 1] = id
    local fl = 'f'
    if kind == 'd' then
      local res = ARGV[b + 3]
      redis.call('HSET', jk, 'status', 'done', 'result', res, 'token', '',
        'progress', '100', 'finished', NOW_US_S)
      redis.call('PEXPIRE', jk, ttl_ms)
      done[#done + 1] = NOW_S
      done[#done + 1] = id
      publish(id, 'done', 100)
      if cb then webhook(id, jk, 'done', res, nil) end
    elseif kind == 'r' and tonumber(h[2]) < tonumber(h[3]) then
      fl = 'o'
      redis.call('HSET', jk, 'status', 'retrying', 'error', ARGV[b + 4], 'token', '')
      redis.call('ZADD', P .. 'delayed', NOW + tonumber(ARGV[b + 5]), id)
      redis.call('HINCRBY', P .. 'stats', 'retrying', 1)
      publish(id, 'retrying')
    elseif kind == 'r' or kind == 'f' then
      bury(id, jk, ARGV[b + 4], dead_max, cb)
    elseif kind == 'c' then
      redis.call('HSET', jk, 'status', 'cancelled', 'error', ARGV[b + 4],
        'token', '', 'finished', NOW_US)
      redis.call('PEXPIRE', jk, ttl * 1000)
      redis.call('HINCRBY', P .. 'stats', 'cancelled', 1)
      publish(id, 'cancelled')
      if cb then webhook(id, jk, 'cancelled', nil, ARGV[b + 4]) end
    else -- requeue at the front of its band, attempt not counted
      fl = 'o'
      redis.call('HSET', jk, 'status', 'queued', 'token', '',
        'attempts', math.max(0, tonumber(h[2]) - 1))
      redis.call('ZADD', P .. 'pending', tonumber(h[4]) * BAND, id)
      publish(id, 'queued')
      wake_markers(1)
    end
    flags[#flags + 1] = fl
  end
end
if #unlease > 0 then redis.call('ZREM', P .. 'active', unpack(unlease)) end
if #done > 0 then
  redis.call('ZADD', P .. 'done', unpack(done))
  local n = redis.call('ZCARD', P .. 'done')
  if n > done_max then
    -- Over the cap: the oldest finished jobs go, hashes included (they
    -- would otherwise live out RESULT_TTL unlisted).
    local old = redis.call('ZPOPMIN', P .. 'done', n - done_max)
    local keys = {}
    for i = 1, #old, 2 do keys[#keys + 1] = P .. 'job:' .. old[i] end
    redis.call('DEL', unpack(keys))
  end
end
if stale > 0 then redis.call('HINCRBY', P .. 'stats', 'stale', stale) end

-- Promote due delayed jobs into pending.
local due = redis.call('ZRANGEBYSCORE', P .. 'delayed', '-inf', NOW, 'LIMIT', 0, 1000)
if #due > 0 then
  local pend = {}
  local retried = 0
  for i = 1, #due do
    local jk = P .. 'job:' .. due[i]
    local h = redis.call('HMGET', jk, 'priority', 'status')
    if h[1] then
      if h[2] == 'retrying' then retried = retried + 1 end
      redis.call('HSET', jk, 'status', 'queued')
      pend[#pend + 1] = tonumber(h[1]) * BAND + seq(1)
      pend[#pend + 1] = due[i]
    end
  end
  redis.call('ZREM', P .. 'delayed', unpack(due))
  if #pend > 0 then redis.call('ZADD', P .. 'pending', unpack(pend)) end
  if retried > 0 then redis.call('HINCRBY', P .. 'stats', 'retrying', -retried) end
end

-- Reclaim expired leases: their holder is gone (the attempt counts).
local exp = redis.call('ZRANGEBYSCORE', P .. 'active', '-inf', NOW, 'LIMIT', 0, 1000)
if #exp > 0 then
  local pend = {}
  for i = 1, #exp do
    local id = exp[i]
    local jk = P .. 'job:' .. id
    local h = redis.call('HMGET', jk, 'attempts', 'max_attempts', 'priority',
      'worker', 'cancel', 'callback')
    local cb = h[6] and h[6] ~= ''
    if h[1] then
      local msg = 'lease expired (worker ' .. (h[4] or '?') .. ' stopped renewing it)'
      if h[5] then
        redis.call('HSET', jk, 'status', 'cancelled', 'error', 'cancelled',
          'token', '', 'finished', NOW_US)
        redis.call('PEXPIRE', jk, ttl * 1000)
        redis.call('HINCRBY', P .. 'stats', 'cancelled', 1)
        publish(id, 'cancelled')
        if cb then webhook(id, jk, 'cancelled', nil, 'cancelled') end
      elseif tonumber(h[1]) >= tonumber(h[2]) then
        bury(id, jk, msg, dead_max, cb)
      else
        redis.call('HSET', jk, 'status', 'queued', 'token', '', 'error', msg)
        pend[#pend + 1] = tonumber(h[3]) * BAND
        pend[#pend + 1] = id
      end
    end
  end
  redis.call('ZREM', P .. 'active', unpack(exp))
  if #pend > 0 then redis.call('ZADD', P .. 'pending', unpack(pend)) end
  redis.call('HINCRBY', P .. 'stats', 'reclaimed', #exp)
end

local out = { NOW, 0, table.concat(flags), 0 }
if want > 0 then
  local pop = redis.call('ZPOPMIN', P .. 'pending', want)
  if #pop > 0 then
    local k = #pop / 2
    local tok0 = seq(k)
    local deadline = string.format('%d', NOW + lease)
    local za = {}
    for i = 1, k do
      local id = pop[2 * i - 1]
      local jk = P .. 'job:' .. id
      local h = redis.call('HMGET', jk, 'type', 'payload', 'attempts',
        'max_attempts', 'timeout', 'callback', 'trace', 'created', 'priority')
      if h[1] then
        local att = tonumber(h[3]) + 1
        local tok = tostring(tok0 + i - 1)
        redis.call('HSET', jk, 'status', 'active', 'attempts', tostring(att), 'token', tok,
          'worker', worker, 'started', NOW_US_S)
        za[#za + 1] = deadline
        za[#za + 1] = id
        local o = #out
        out[o + 1] = id; out[o + 2] = tok; out[o + 3] = att
        out[o + 4] = h[1]; out[o + 5] = h[2]; out[o + 6] = h[4]
        out[o + 7] = h[5]; out[o + 8] = h[6] or ''; out[o + 9] = h[7] or ''
        out[o + 10] = h[8]; out[o + 11] = h[9]
        out[4] = out[4] + 1
      end
    end
    if #za > 0 then redis.call('ZADD', P .. 'active', unpack(za)) end
  end
end
if out[4] == 0 and want > 0 then
  -- Nothing due: tell the worker when to look again, and drop stale wake
  -- markers so its blocking wait does not return at once for nothing.
  local nd = redis.call('ZRANGE', P .. 'delayed', 0, 0, 'WITHSCORES')
  local na = redis.call('ZRANGE', P .. 'active', 0, 0, 'WITHSCORES')
  local next_due = 0
  if #nd > 0 then next_due = tonumber(nd[2]) end
  if #na > 0 and (next_due == 0 or tonumber(na[2]) < next_due) then
    next_due = tonumber(na[2])
  end
  out[2] = next_due
  redis.call('DEL', P .. 'marker')
end
return out
