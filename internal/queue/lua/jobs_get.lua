-- jobs_get: ARGV ids. Returns each job's hash (HGETALL: field, value
-- pairs; empty for an id that names no job), in the order of the ids: one
-- round trip for a batch callback's 1000 dependencies (queue_jobs_get).
-- keys (all under KEYS[1] = wakeq:{QUEUE}:): job:ID.
local out = {}
for i = 1, #ARGV do out[i] = redis.call('HGETALL', P .. 'job:' .. ARGV[i]) end
return out
