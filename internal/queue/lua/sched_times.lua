-- sched_times: ARGV name, mode (add: more fire times ahead; resume: clear
-- paused and replace them; pause: set paused, drop them), then fire times
-- (ms, ascending). Returns 1, or -1 when there is no such schedule.
-- keys (all under KEYS[1] = wakeq:{QUEUE}:): sched:NAME, stimes:NAME, schedules, marker.
local name, mode = ARGV[1], ARGV[2]
local sk, tk = P .. 'sched:' .. name, P .. 'stimes:' .. name
if redis.call('EXISTS', sk) == 0 then return -1 end
if mode == 'pause' then
  redis.call('HSET', sk, 'paused', '1')
  redis.call('DEL', tk)
  redis.call('ZREM', P .. 'schedules', name)
  return 1
end
if mode == 'resume' then
  redis.call('HDEL', sk, 'paused')
  redis.call('DEL', tk)
elseif redis.call('HEXISTS', sk, 'paused') == 1 then
  return 1
end
local z = {}
for i = 3, #ARGV do z[#z + 1] = ARGV[i]; z[#z + 1] = ARGV[i] end
if #z > 0 then redis.call('ZADD', tk, unpack(z)) end
local nx = redis.call('ZRANGE', tk, 0, 0, 'WITHSCORES')
if #nx > 0 then
  redis.call('ZADD', P .. 'schedules', nx[2], name)
  wake_markers(1)
end
return 1
