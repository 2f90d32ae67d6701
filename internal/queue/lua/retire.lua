-- retire: ARGV worker, force (0/1). Leaves the registry unless due work
-- exists; a paused queue has none (nothing is leased from it). Returns 1
-- when retired, 0 when refused.
-- keys (all under KEYS[1] = wakeq:{QUEUE}:): config, pending, delayed, active, workers.
if ARGV[2] ~= '1' and not config_load().paused then
  if redis.call('ZCARD', P .. 'pending') > 0 then return 0 end
  if #redis.call('ZRANGEBYSCORE', P .. 'delayed', '-inf', NOW, 'LIMIT', 0, 1) > 0 then return 0 end
  if #redis.call('ZRANGEBYSCORE', P .. 'active', '-inf', NOW, 'LIMIT', 0, 1) > 0 then return 0 end
end
redis.call('ZREM', P .. 'workers', ARGV[1])
return 1
