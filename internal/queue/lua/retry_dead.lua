-- retry_dead: ARGV id. Dead → queued, attempts reset. Returns 0, -1 no
-- such job, -2 not dead.
local id = ARGV[1]
local jk = P .. 'job:' .. id
if redis.call('EXISTS', jk) == 0 then return -1 end
if redis.call('ZREM', P .. 'dead', id) == 0 then return -2 end
local prio = tonumber(redis.call('HGET', jk, 'priority')) or 0
redis.call('HSET', jk, 'status', 'queued', 'attempts', 0, 'token', '',
  'finished', '', 'run_at', NOW_US)
redis.call('HDEL', jk, 'cancel')
redis.call('ZADD', P .. 'pending', prio * BAND + seq(1), id)
publish(id, 'queued')
wake_markers(1)
return 0
