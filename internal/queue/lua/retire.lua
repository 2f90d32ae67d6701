-- retire: ARGV worker, force (0/1). Leaves the registry unless due work
-- exists; a paused queue has none (nothing is leased from it), and queued
-- jobs held back by the queue's concurrency cap or rate limit are not due
-- (a settle or the next token is: take's next_due). Returns 1 when
-- retired, 0 when refused.
-- keys (all under KEYS[1] = wakeq:{QUEUE}:): config, pending, grr, gwait, rate, schedules, delayed, active, workers.
local cfg = ARGV[2] ~= '1' and config_load()
if cfg and not cfg.paused then
  local open = not (cfg.conc and redis.call('ZCARD', P .. 'active') >= cfg.conc)
  if open and cfg.rate_max then
    open = bucket_room(P .. 'rate', cfg.rate_max, cfg.rate_ms) > 0
  end
  if open then
    if redis.call('ZCARD', P .. 'pending') > 0 then return 0 end
    if cfg.grouped and (redis.call('LLEN', P .. 'grr') > 0 or
        #redis.call('ZRANGEBYSCORE', P .. 'gwait', '-inf', NOW, 'LIMIT', 0, 1) > 0) then
      return 0
    end
  end
  if #redis.call('ZRANGEBYSCORE', P .. 'delayed', '-inf', NOW, 'LIMIT', 0, 1) > 0 then return 0 end
  if cfg.scheduled and
      #redis.call('ZRANGEBYSCORE', P .. 'schedules', '-inf', NOW, 'LIMIT', 0, 1) > 0 then
    return 0
  end
  if #redis.call('ZRANGEBYSCORE', P .. 'active', '-inf', NOW, 'LIMIT', 0, 1) > 0 then return 0 end
end
redis.call('ZREM', P .. 'workers', ARGV[1])
return 1
