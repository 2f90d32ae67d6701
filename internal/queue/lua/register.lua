-- register: ARGV worker, ttl_ms. Registers the worker as live and drops
-- registrations that have run out.
redis.call('ZREMRANGEBYSCORE', P .. 'workers', '-inf', NOW)
redis.call('ZADD', P .. 'workers', NOW + tonumber(ARGV[2]), ARGV[1])
return NOW
