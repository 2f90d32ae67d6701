-- sketch/take.lua: a lease with no per-job write (tests/bench/instr.sh
-- measures it; not what wakeq runs: docs/QUEUE.md "What issue 14's
-- remaining targets would take"). KEYS[1] the prefix, ARGV[1] how many,
-- ARGV[2] the lease deadline (ms). The batch's lease is one token, kept
-- in `active` as the members TOKEN:ID; a job's record is only read (the
-- attempt is counted at settle, or by a reclaim of an expired member).
-- The per-run look-ups of the engine's take (the clock, config, delayed
-- and expired leases) are kept so that a run costs what one would.
-- Returns the token, then ID, spec, payload, attempts a job.
local P, n = KEYS[1], tonumber(ARGV[1])
local T = redis.call('TIME')
local now = T[1] .. string.format('%03d', math.floor(tonumber(T[2]) / 1000))
redis.call('HGETALL', P .. 'config')
redis.call('ZRANGEBYSCORE', P .. 'delayed', '-inf', now, 'LIMIT', '0', '64')
redis.call('ZRANGEBYSCORE', P .. 'active', '-inf', now, 'LIMIT', '0', '64')
local ids = redis.call('ZRANGE', P .. 'pending', '0', ARGV[1] - 1)
if #ids == 0 then return {} end
redis.call('ZREMRANGEBYRANK', P .. 'pending', '0', #ids - 1)
local t = string.format('%d', redis.call('INCR', P .. 'seq'))
local out, za = { t }, {}
for i = #ids, 1, -1 do
  local id = ids[i]
  local v = redis.call('HMGET', P .. 'job:' .. id, 's', 'payload', 'attempts')
  za[#za + 1] = ARGV[2]; za[#za + 1] = t .. ':' .. id
  out[#out + 1] = id; out[#out + 1] = v[1]; out[#out + 1] = v[2]; out[#out + 1] = v[3]
end
redis.call('ZADD', P .. 'active', unpack(za))
return out
