-- sched_put: ARGV name, paused (0/1), n, then n pairs of schedule field and
-- value (cron, tz, overlap, catchup, catchup_max, prio, h:FIELD...), then
-- the first fire times (ms). Creates or replaces schedule `name` (what it
-- did so far is kept on a replace). Returns 1 created, 0 replaced.
-- keys (all under KEYS[1] = wakeq:{QUEUE}:): sched:NAME, stimes:NAME, schedules, schedset, config, marker.
local name = ARGV[1]
local sk, tk = P .. 'sched:' .. name, P .. 'stimes:' .. name
local n = tonumber(ARGV[3])
local created = redis.call('SADD', P .. 'schedset', name)
-- a replace drops the old definition, the template fields included
local old = redis.call('HKEYS', sk)
local drop = {}
for i = 1, #old do
  if old[i] ~= 'created' and old[i] ~= 'last_fire' and old[i] ~= 'last_job' and
      old[i] ~= 'fired' and old[i] ~= 'skipped' then
    drop[#drop + 1] = old[i]
  end
end
if #drop > 0 then redis.call('HDEL', sk, unpack(drop)) end
local f = {}
for i = 4, 3 + 2 * n do f[#f + 1] = ARGV[i] end
if created == 1 then f[#f + 1] = 'created'; f[#f + 1] = NOW_US_S end
if ARGV[2] == '1' then f[#f + 1] = 'paused'; f[#f + 1] = '1' end
redis.call('HSET', sk, unpack(f))
redis.call('DEL', tk)
local z = {}
for i = 4 + 2 * n, #ARGV do z[#z + 1] = ARGV[i]; z[#z + 1] = ARGV[i] end
if #z > 0 then redis.call('ZADD', tk, unpack(z)) end
if ARGV[2] == '1' or #z == 0 then
  redis.call('ZREM', P .. 'schedules', name)
else
  redis.call('ZADD', P .. 'schedules', z[1], name)
end
redis.call('HSET', P .. 'config', 'scheduled', '1')
wake_markers(1) -- an idle worker learns of an earlier due time
return created
