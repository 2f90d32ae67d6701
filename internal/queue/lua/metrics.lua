-- metrics: what the API's /metrics and GET /v1/queues/{q} need beyond the
-- counts script. No ARGV. Returns { MET_NOW (ms), MET_DUE (delayed jobs
-- whose time has come, not promoted yet), MET_OLDEST_DUE (ms on the Redis
-- clock since when the longest-waiting due job has been due: the earliest
-- due delayed job, and the heads of each priority band of pending and of
-- each group's gpend; 0 =
-- none), then the fields and values of the hash `metrics` (see _lib.lua) }.
-- Read only.
-- Layout rule: these offsets and the MET_* names in queue.c change together.
-- keys (all under KEYS[1] = wakeq:{QUEUE}:): config, delayed, pending, gin, gpend:G, job:ID, metrics.
local oldest = 0
local d = redis.call('ZRANGEBYSCORE', P .. 'delayed', '-inf', NOW, 'WITHSCORES', 'LIMIT', 0, 1)
if #d > 0 then oldest = tonumber(d[2]) end
local ndue = redis.call('ZCOUNT', P .. 'delayed', '-inf', NOW)
-- pending runs by band, FIFO by sequence inside one; a job put back at the
-- front of its band (score = the band's start) may be younger than the
-- first of the rest, so the first of each kind is looked at.
local function oldest_of(key)
  local from = '-inf'
  while true do
    local h = redis.call('ZRANGEBYSCORE', key, from, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
    if #h == 0 then break end
    local band = math.floor(tonumber(h[2]) / BAND)
    local heads = { h[1] }
    if tonumber(h[2]) == band * BAND then
      local r = redis.call('ZRANGEBYSCORE', key,
        '(' .. string.format('%d', band * BAND), '(' .. string.format('%d', (band + 1) * BAND),
        'LIMIT', 0, 1)
      if #r > 0 then heads[2] = r[1] end
    end
    for i = 1, #heads do
      local t = tonumber(redis.call('HGET', P .. 'job:' .. heads[i], 'run_at') or '')
      if t then
        t = math.floor(t / 1000)
        if oldest == 0 or t < oldest then oldest = t end
      end
    end
    from = string.format('%d', (band + 1) * BAND)
  end
end
oldest_of(P .. 'pending')
-- a grouped job waits in its group's set, ordered the same way
if config_load().grouped then
  for _, g in ipairs(redis.call('SMEMBERS', P .. 'gin')) do oldest_of(P .. 'gpend:' .. g) end
end
local out = { NOW, ndue, oldest }
local m = redis.call('HGETALL', P .. 'metrics')
for i = 1, #m do out[#out + 1] = m[i] end
return out
