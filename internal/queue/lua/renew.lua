-- renew: ARGV worker, lease_ms, ttl_ms, n, then id, token, running (0/1)
-- triples. Extends the leases still held and the worker's registration,
-- and marks the jobs whose run has begun (field `ran` = the lease's token:
-- a lease that expires without it is not counted as an attempt, see
-- take.lua). Returns one letter a lease: o held, l lost (stop), c held
-- with cancel requested.
-- keys (all under KEYS[1] = wakeq:{QUEUE}:): active, job:ID, workers.
local worker = ARGV[1]
local deadline = NOW + tonumber(ARGV[2])
local n = tonumber(ARGV[4])
local flags = {}
local za = {}
for i = 0, n - 1 do
  local id, tok, running = ARGV[5 + 3 * i], ARGV[6 + 3 * i], ARGV[7 + 3 * i]
  local jk = P .. 'job:' .. id
  local h = redis.call('HMGET', jk, 'token', 'cancel', 'ran')
  if h[1] ~= tok then
    flags[#flags + 1] = 'l'
  else
    za[#za + 1] = deadline
    za[#za + 1] = id
    flags[#flags + 1] = h[2] and 'c' or 'o'
    if running == '1' and h[3] ~= tok then redis.call('HSET', jk, 'ran', tok) end
  end
end
if #za > 0 then redis.call('ZADD', P .. 'active', 'XX', unpack(za)) end
-- XX: a heartbeat never re-registers a worker that has retired.
redis.call('ZADD', P .. 'workers', 'XX', NOW + tonumber(ARGV[3]), worker)
return table.concat(flags)
