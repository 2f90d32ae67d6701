-- sched_del: ARGV name. Deletes a schedule (its jobs made so far stay).
-- Returns 1, or 0 when there was none.
-- keys (all under KEYS[1] = wakeq:{QUEUE}:): sched:NAME, stimes:NAME, schedules, schedset, config.
local name = ARGV[1]
local n = redis.call('DEL', P .. 'sched:' .. ARGV[1])
redis.call('DEL', P .. 'stimes:' .. name)
redis.call('ZREM', P .. 'schedules', name)
redis.call('SREM', P .. 'schedset', name)
if redis.call('SCARD', P .. 'schedset') == 0 then
  redis.call('HDEL', P .. 'config', 'scheduled')
end
return n
