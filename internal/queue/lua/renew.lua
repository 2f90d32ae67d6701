-- renew: ARGV worker, lease_ms, ttl_ms, n, then id, token pairs.
-- Extends the leases still held and the worker's registration. Returns
-- one letter a lease: o held, l lost (stop), c held with cancel requested.
-- keys (all under KEYS[1] = wakeq:{QUEUE}:): active, job:ID, workers.
local worker = ARGV[1]
local deadline = NOW + tonumber(ARGV[2])
local n = tonumber(ARGV[4])
local flags = {}
local za = {}
for i = 0, n - 1 do
  local id, tok = ARGV[5 + 2 * i], ARGV[6 + 2 * i]
  local h = redis.call('HMGET', P .. 'job:' .. id, 'token', 'cancel')
  if h[1] ~= tok then
    flags[#flags + 1] = 'l'
  else
    za[#za + 1] = deadline
    za[#za + 1] = id
    flags[#flags + 1] = h[2] and 'c' or 'o'
  end
end
if #za > 0 then redis.call('ZADD', P .. 'active', 'XX', unpack(za)) end
-- XX: a heartbeat never re-registers a worker that has retired.
redis.call('ZADD', P .. 'workers', 'XX', NOW + tonumber(ARGV[3]), worker)
return table.concat(flags)
