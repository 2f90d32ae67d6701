-- cancel: ARGV id, result_ttl_s, dead_max (the process's RESULT_TTL and
-- dead cap, for it and the dependents it ends; the queue's own
-- result_ttl and dead_max come first). Returns 0 cancelled now, 2 cancelled
-- now and a callback delivery queued or dependents released (someone must
-- wake a worker for it); its dependents hear of it (deps_settle),
-- 1 cancel requested (active), -1 no such job, -2 already finished.
-- keys (all under KEYS[1] = wakeq:{QUEUE}:): config, job:ID, uniq:KEY, waiting, deps:ID, pending, gpend:G, delayed, stats, record, finals, metrics; events; webhook: job:WID, pending, marker, seq.
local id = ARGV[1]
local jk = P .. 'job:' .. id
local h = redis.call('HMGET', jk, 'status', 'unique', 'group', 'type')
local st = h[1]
if not st then return -1 end
if st == 'active' then
  redis.call('HSET', jk, 'cancel', 1)
  return 1
end
if st == 'queued' then
  if pending_remove(id, h[3]) == 0 then return -2 end
elseif st == 'waiting' then
  if redis.call('ZREM', P .. 'waiting', id) == 0 then return -2 end
elseif st == 'scheduled' or st == 'retrying' then
  if redis.call('ZREM', P .. 'delayed', id) == 0 then return -2 end
  if st == 'retrying' then redis.call('HINCRBY', P .. 'stats', 'retrying', -1) end
else
  return -2
end
local ttl = config_load().result_ttl or ARGV[2]
RET = { ttl = ttl, dead_max = config_load().dead_max or tonumber(ARGV[3]) or 10000 }
local cb = finish_cancelled(id, jk, 'cancelled', ttl, true, h[2])
local depmore = deps_resume() or DEP_DEFERRED
m_outcome(h[4], 'cancelled')
flush()
-- dependents it released (on_dependency_failure ignore), or a cascade left
-- for a take (depfail), need a worker too
if cb or RELEASED > 0 or depmore then return 2 end
return 0
