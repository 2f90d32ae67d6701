-- pause: ARGV paused (1 pause, 0 resume). Sets or clears the queue's
-- paused flag. A paused queue still takes jobs; take leases none from it.
-- On resume, wake markers go out for the due work, so idle workers look
-- at once. Returns { due (jobs that may run now), live workers, next due
-- time (ms, 0 none: the earliest delayed job not yet due, or a rate
-- limit's next token) }.
-- keys (all under KEYS[1] = wakeq:{QUEUE}:): config, pending, grr, gwait, gpend:G, rate, active, delayed, workers, marker.
local due, next_due = 0, 0
if ARGV[1] == '1' then
  redis.call('HSET', P .. 'config', 'paused', '1')
else
  redis.call('HDEL', P .. 'config', 'paused')
  local ready, held, wake_at = queue_due(config_load())
  due = ready + redis.call('ZCOUNT', P .. 'delayed', '-inf', NOW)
  if due > 0 then wake_markers(due) end
  local nd = redis.call('ZRANGEBYSCORE', P .. 'delayed', '(' .. NOW, '+inf',
    'WITHSCORES', 'LIMIT', 0, 1)
  if #nd > 0 then next_due = tonumber(nd[2]) end
  if wake_at > 0 and (next_due == 0 or wake_at < next_due) then next_due = wake_at end
end
return { due, redis.call('ZCOUNT', P .. 'workers', NOW, '+inf'), next_due }
