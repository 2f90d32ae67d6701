-- sketch/fill.lua: ARGV[1] jobs queued as the engine's enqueue writes a
-- plain one (the same record fields), for sketch/take.lua.
local P, n = KEYS[1], tonumber(ARGV[1])
for i = 1, n do
  local id = string.format('01900000-0000-7000-8000-%012d', i)
  redis.call('HSET', P .. 'job:' .. id, 'status', 'queued', 'priority', '0', 'attempts', '0',
    'created', '1796000000000000', 'run_at', '1796000000000000', 'type', 'noop', 'payload', '{}',
    'max_attempts', '3', 'timeout', '0', 's', '@noop\t3\t0')
  redis.call('ZADD', P .. 'pending', i, id)
end
return n
