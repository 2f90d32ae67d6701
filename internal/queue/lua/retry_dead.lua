-- retry_dead: ARGV id. Dead → queued, attempts reset. Returns 0, -1 no
-- such job, -2 not dead.
-- keys (all under KEYS[1] = wakeq:{QUEUE}:): job:ID, dead, pending, seq, marker; events.
local id = ARGV[1]
local jk = P .. 'job:' .. id
if redis.call('EXISTS', jk) == 0 then return -1 end
if redis.call('ZREM', P .. 'dead', id) == 0 then return -2 end
local prio = redis.call('HGET', jk, 'priority')
redis.call('HSET', jk, 'status', 'queued', 'attempts', 0, 'token', '',
  'finished', '', 'run_at', NOW_US)
redis.call('HDEL', jk, 'cancel')
local batch = {}
pending_add(batch, prio, id)
pending_flush(batch)
publish(id, 'queued')
wake_markers(1)
flush()
return 0
