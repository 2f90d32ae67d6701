-- enqueue: ARGV[1] = number of jobs, then 12 fields a job:
-- id, type, payload, priority, run_at_ms, delay_ms, max_attempts,
-- timeout_s, idempotency_key, idempotency_ttl_s, callback_url, trace.
-- Returns { live_worker (0/1), id1, created1, id2, created2, ... }.
local n = tonumber(ARGV[1])
local out = {}
local pend = {}
local created = 0
for i = 0, n - 1 do
  local b = 2 + i * 12
  local id = ARGV[b]
  local ik = ARGV[b + 8]
  local existing = nil
  if ik ~= '' then
    existing = redis.call('GET', P .. 'idem:' .. ik)
    if not existing then
      redis.call('SET', P .. 'idem:' .. ik, id, 'EX', tonumber(ARGV[b + 9]))
    end
  end
  if existing then
    out[#out + 1] = existing
    out[#out + 1] = 0
  else
    local prio = tonumber(ARGV[b + 3])
    local run_at = tonumber(ARGV[b + 4])
    if run_at == 0 then run_at = NOW + tonumber(ARGV[b + 5]) end
    local status = 'queued'
    if run_at > NOW then
      status = 'scheduled'
      redis.call('ZADD', P .. 'delayed', run_at, id)
    else
      run_at = NOW
      pend[#pend + 1] = prio * BAND + seq(1)
      pend[#pend + 1] = id
    end
    local f = { 'type', ARGV[b + 1], 'payload', ARGV[b + 2], 'status', status,
      'priority', ARGV[b + 3], 'attempts', '0', 'max_attempts', ARGV[b + 6],
      'timeout', ARGV[b + 7], 'created', NOW_US_S,
      'run_at', run_at == NOW and NOW_S .. '000' or string.format('%d', run_at * 1000) }
    if ik ~= '' then f[#f + 1] = 'idem'; f[#f + 1] = ik end
    if ARGV[b + 10] ~= '' then f[#f + 1] = 'callback'; f[#f + 1] = ARGV[b + 10] end
    if ARGV[b + 11] ~= '' then f[#f + 1] = 'trace'; f[#f + 1] = ARGV[b + 11] end
    redis.call('HSET', P .. 'job:' .. id, unpack(f))
    created = created + 1
    out[#out + 1] = id
    out[#out + 1] = 1
  end
end
if #pend > 0 then redis.call('ZADD', P .. 'pending', unpack(pend)) end
-- Wake idle workers: for due jobs, and for scheduled ones too, since an
-- idle worker sleeping until its next due time must learn of an earlier one.
if created > 0 then wake_markers(created) end
local live = redis.call('ZRANGEBYSCORE', P .. 'workers', NOW, '+inf', 'LIMIT', 0, 1)
table.insert(out, 1, #live > 0 and 1 or 0)
return out
