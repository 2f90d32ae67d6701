-- retry_dead: ARGV id. Dead → queued, attempts reset; the job takes its
-- unique key again. Returns 0, -1 no such job, -2 not dead, -3 its unique
-- key is held by another live job.
-- keys (all under KEYS[1] = wakeq:{QUEUE}:): job:ID, dead, uniq:KEY, pending, gpend:G, gin, grr, config, seq, marker; events.
local id = ARGV[1]
local jk = P .. 'job:' .. id
local h = redis.call('HMGET', jk, 'priority', 'unique', 'group')
if not h[1] then return -1 end
if redis.call('ZSCORE', P .. 'dead', id) == false then return -2 end
if h[2] and h[2] ~= '' then
  local holder = unique_holder(h[2])
  if holder and holder ~= id then return -3 end
  redis.call('SET', P .. 'uniq:' .. h[2], id)
end
redis.call('ZREM', P .. 'dead', id)
local prio = h[1]
redis.call('HSET', jk, 'status', 'queued', 'attempts', 0, 'token', '',
  'finished', '', 'run_at', NOW_US)
redis.call('HDEL', jk, 'cancel')
local batch = {}
pending_add(batch, prio, id, false, h[3])
pending_flush(batch)
publish(id, 'queued')
wake_markers(1)
flush()
return 0
