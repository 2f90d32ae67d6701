-- register: ARGV worker, ttl_ms. Registers the worker as live and drops
-- registrations that have run out.
-- keys (all under KEYS[1] = wakeq:{QUEUE}:): workers.
redis.call('ZREMRANGEBYSCORE', P .. 'workers', '-inf', NOW)
redis.call('ZADD', P .. 'workers', NOW + tonumber(ARGV[2]), ARGV[1])
return NOW
