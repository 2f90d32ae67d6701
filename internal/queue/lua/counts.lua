-- counts: returns the COUNT_* integers of queue.c, in this order:
-- pending, delayed, active, done, dead, retrying, cancelled, live workers,
-- stale, earliest delayed due time (ms, 0 none), paused (0/1), all-time
-- totals of done and failed jobs; then for waking: the queued jobs a
-- worker could lease now, those held back by a rate limit, and when the
-- first of those may go (ms, 0 none) - all 0 while paused; then the jobs
-- waiting for their dependencies; then the earliest lease deadline of an
-- active job (ms, 0 none). Pending counts grouped jobs too.
-- Layout rule: this order and the COUNT_* names in queue.c change together.
-- keys (all under KEYS[1] = wakeq:{QUEUE}:): config, stats, pending, gin, gpend:G, grr, gwait, rate, delayed, active, done, dead, workers, waiting.
local s = redis.call('HMGET', P .. 'stats', 'retrying', 'cancelled', 'stale',
  'done_trimmed', 'failed')
local nd = redis.call('ZRANGE', P .. 'delayed', 0, 0, 'WITHSCORES')
local ndone = redis.call('ZCARD', P .. 'done')
local cfg = config_load()
local npend = redis.call('ZCARD', P .. 'pending')
if cfg.grouped then
  for _, g in ipairs(redis.call('SMEMBERS', P .. 'gin')) do
    npend = npend + redis.call('ZCARD', P .. 'gpend:' .. g)
  end
end
local na = redis.call('ZRANGE', P .. 'active', 0, 0, 'WITHSCORES')
local due, held, wake_at = 0, 0, 0
if not cfg.paused then due, held, wake_at = queue_due(cfg) end
return { npend, redis.call('ZCARD', P .. 'delayed'),
  redis.call('ZCARD', P .. 'active'), ndone,
  redis.call('ZCARD', P .. 'dead'), tonumber(s[1]) or 0, tonumber(s[2]) or 0,
  redis.call('ZCOUNT', P .. 'workers', NOW, '+inf'), tonumber(s[3]) or 0,
  #nd > 0 and tonumber(nd[2]) or 0, cfg.paused and 1 or 0,
  ndone + (tonumber(s[4]) or 0), tonumber(s[5]) or 0, due, held, wake_at,
  redis.call('ZCARD', P .. 'waiting'), #na > 0 and tonumber(na[2]) or 0 }
