-- progress: ARGV id, token, percent, stage ('' keeps it). Returns 1, or 0
-- when the lease is no longer the caller's.
-- keys (all under KEYS[1] = wakeq:{QUEUE}:): job:ID; events.
local jk = P .. 'job:' .. ARGV[1]
if redis.call('HGET', jk, 'token') ~= ARGV[2] then return 0 end
if ARGV[4] ~= '' then
  redis.call('HSET', jk, 'progress', ARGV[3], 'stage', ARGV[4])
else
  redis.call('HSET', jk, 'progress', ARGV[3])
end
local stage = ARGV[4]
if stage == '' then stage = redis.call('HGET', jk, 'stage') or '' end
publish(ARGV[1], 'active', ARGV[3], stage)
flush()
return 1
