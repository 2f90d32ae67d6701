-- _lib.lua: prepended to every script (lua2c.sh). KEYS[1] is the queue's
-- key prefix "wakeq:{QUEUE}:"; every key a script touches starts with it,
-- so all of them hash to one cluster slot.
local P = KEYS[1]
local T = redis.call('TIME')
local T_US = tonumber(T[2])
local NOW_US = tonumber(T[1]) * 1000000 + T_US
local NOW = math.floor(NOW_US / 1000)
-- The same as strings, for arguments of redis.call: Redis 7.0 formats
-- every Lua number it is given with %.17g (~3,500 instructions for a
-- timestamp, ~1,700 for a small number, against ~1,900 for
-- string.format('%d') and nothing for a string it already has or a
-- constant: docs/QUEUE.md "Numbers and the order of a batch").
local NOW_US_S = T[1] .. string.format('%06d', T_US)
local NOW_S = T[1] .. string.format('%03d', math.floor(T_US / 1000))
-- pending score = priority * BAND + sequence: FIFO inside a priority band.
local BAND = 281474976710656
local seq_next = nil
local seq_left = 0

-- Reserves n numbers of the queue's sequence (one INCRBY per script run
-- when possible); returns the first.
local function seq(n)
  if seq_left < n then
    local want, arg = 64, '64' -- a constant: no number formatted
    if n > 64 then want, arg = n, string.format('%d', n) end
    local top = redis.call('INCRBY', P .. 'seq', arg)
    seq_next = top - want + 1
    seq_left = want
  end
  local s = seq_next
  seq_next = seq_next + n
  seq_left = seq_left - n
  return s
end

-- The queue's settings: the hash wakeq:{Q}:config, set by operators
-- (pause, retention, limits) and read at most once per script run, by
-- config_load. An absent field leaves the process's default. Helpers read
-- the table it returns (CFG) rather than the hash.
-- Fields (internal/queue/settings.c's table names the same): result_ttl
-- and dead_ttl in seconds, done_max and dead_max counts; rate_max jobs
-- per rate_ms (ms) and at most conc active, for the queue; grate_max per
-- grate_ms and gconc for each group; grouped (set by group_join); scheduled
-- (set while the queue has cron schedules); depfail (set while the list
-- depfail holds cascades left for later: deps_resume). CFG.limited: any of the
-- limits or grouped, so take needs its limited path.
local CFG = nil
local function config_load()
  if CFG then return CFG end
  -- HGETALL, not HMGET of the 14 names: a call costs by the strings that
  -- cross into Lua, and most queues' config holds none of them
  -- (docs/QUEUE.md "Engine costs")
  local v = redis.call('HGETALL', P .. 'config')
  local c = {}
  for i = 1, #v, 2 do c[v[i]] = v[i + 1] end
  CFG = { paused = c.paused == '1', result_ttl = c.result_ttl,
    done_max = tonumber(c.done_max), dead_max = tonumber(c.dead_max),
    dead_ttl = tonumber(c.dead_ttl), rate_max = tonumber(c.rate_max),
    rate_ms = tonumber(c.rate_ms), conc = tonumber(c.conc),
    grate_max = tonumber(c.grate_max), grate_ms = tonumber(c.grate_ms),
    gconc = tonumber(c.gconc), grouped = c.grouped == '1',
    scheduled = c.scheduled == '1', depfail = c.depfail == '1' }
  if not CFG.rate_ms then CFG.rate_max = nil end
  if not CFG.grate_ms then CFG.grate_max = nil end
  CFG.limited = CFG.rate_max or CFG.conc or CFG.grate_max or CFG.gconc or
    CFG.grouped
  return CFG
end

-- ---- rate limits ------------------------------------------------------------
-- A token bucket of `max` jobs per `ms`, bursts up to `max`, kept as its
-- theoretical arrival time (GCRA) in the string key k, which expires when
-- the bucket is full again. Reads are cached for the script run and
-- writes gathered: bucket_flush writes each changed one once.
local BUCKETS = {}
local function bucket(k)
  local b = BUCKETS[k]
  if not b then
    b = { tat = tonumber(redis.call('GET', k)) or 0 }
    BUCKETS[k] = b
  end
  if b.tat < NOW then b.tat = NOW end
  return b
end

-- How many may go now; when none may, the time (ms) the next one may.
local function bucket_room(k, max, ms)
  local b = bucket(k)
  local t = ms / max
  local n = math.floor((NOW + ms - b.tat) / t + 1e-9)
  if n >= 1 then return n, 0 end
  return 0, math.ceil(b.tat + t - ms)
end

local function bucket_spend(k, max, ms, n)
  local b = bucket(k)
  b.tat = b.tat + n * ms / max
  b.dirty = true
end

local function bucket_flush()
  for k, b in pairs(BUCKETS) do
    if b.dirty then
      redis.call('SET', k, string.format('%.3f', b.tat), 'PX',
        math.max(1, math.ceil(b.tat - NOW)))
    end
  end
end

-- Queued jobs a worker could lease now under the queue's limits (the
-- pause aside), those held back by a rate limit, and when the first of
-- those may go (ms, 0 none). O(groups): for counts and resume, never take.
local function queue_due(cfg)
  local ready = redis.call('ZCARD', P .. 'pending')
  local held, wake_at = 0, 0
  if cfg.grouped then
    for _, g in ipairs(redis.call('LRANGE', P .. 'grr', 0, -1)) do
      ready = ready + redis.call('ZCARD', P .. 'gpend:' .. g)
    end
    local w = redis.call('ZRANGE', P .. 'gwait', 0, -1, 'WITHSCORES')
    for i = 1, #w, 2 do
      local n, at = redis.call('ZCARD', P .. 'gpend:' .. w[i]), tonumber(w[i + 1])
      if at <= NOW then
        ready = ready + n
      elseif n > 0 then
        held = held + n
        if wake_at == 0 or at < wake_at then wake_at = at end
      end
    end
  end
  if cfg.scheduled then
    -- a schedule due is work: its job is made by the next take
    ready = ready + redis.call('ZCOUNT', P .. 'schedules', '-inf', NOW)
    local f = redis.call('ZRANGEBYSCORE', P .. 'schedules', '(' .. NOW, '+inf',
      'WITHSCORES', 'LIMIT', 0, 1)
    if #f > 0 then
      held = held + 1
      if wake_at == 0 or tonumber(f[2]) < wake_at then wake_at = tonumber(f[2]) end
    end
  end
  if ready > 0 and cfg.conc and redis.call('ZCARD', P .. 'active') >= cfg.conc then
    ready = 0 -- the jobs running free room when they settle
  end
  if ready > 0 and cfg.rate_max then
    local n, at = bucket_room(P .. 'rate', cfg.rate_max, cfg.rate_ms)
    if n == 0 then
      held = held + ready
      ready = 0
      if wake_at == 0 or at < wake_at then wake_at = at end
    end
  end
  return ready, held, wake_at
end

local function wake_markers(n)
  if n > 16 then n = 16 end
  local args = {}
  for i = 1, n do args[i] = '1' end
  if redis.call('LPUSH', P .. 'marker', unpack(args)) > 16 then
    redis.call('LTRIM', P .. 'marker', '0', '15')
  end
end

-- ---- groups ---------------------------------------------------------------
-- A job with a group waits in gpend:G (scored as in pending) rather than
-- in pending. A group with waiting jobs is in the set gin and in exactly
-- one of: grr (a list: the rotation take serves round robin), gwait (a
-- zset: rate-limited until the score, ms), gfull (a set: at its
-- concurrency cap, back in the rotation when one of its jobs leaves
-- active). A group whose jobs all went stays until take next visits it
-- (then it leaves gin). gact:G holds the ids of its leased jobs.
-- config.grouped is set while groups exist, so take's no-controls path
-- needs nothing but its one config_load to know there are none.
local function group_join(g)
  if redis.call('SADD', P .. 'gin', g) == 1 then
    redis.call('LPUSH', P .. 'grr', g)
    redis.call('HSET', P .. 'config', 'grouped', '1')
  end
end

-- A job of group g (false or '' for none: no call) left active.
local function group_release(g, id)
  if not g or g == '' then return end
  redis.call('SREM', P .. 'gact:' .. g, id)
  if redis.call('SREM', P .. 'gfull', g) == 1 then
    redis.call('LPUSH', P .. 'grr', g)
    wake_markers(1) -- a capped group may go again: idle workers look
  end
end

-- Into pending: the one way a job enters the run order. Adds (score, id)
-- to `batch` (a list for one ZADD, flushed by pending_flush): at the back
-- of its priority band, or at the front with `front` (a job that was
-- already running: a shutdown requeue or a reclaimed lease). A job of a
-- group (false, nil or '' for none) goes to its group's set at once.
local function pending_add(batch, prio, id, front, group)
  local score = (tonumber(prio) or 0) * BAND
  if not front then score = score + seq(1) end
  if group and group ~= '' then
    redis.call('ZADD', P .. 'gpend:' .. group, score, id)
    group_join(group)
    return
  end
  batch[#batch + 1] = score
  batch[#batch + 1] = id
end

-- Out of the run order (a cancel): returns 1 when the job was waiting.
local function pending_remove(id, group)
  if group and group ~= '' then
    return redis.call('ZREM', P .. 'gpend:' .. group, id)
  end
  return redis.call('ZREM', P .. 'pending', id)
end

local function pending_flush(batch)
  if #batch > 0 then redis.call('ZADD', P .. 'pending', unpack(batch)) end
end

-- Events: the state changes and progress reports of a script run, sent
-- to the channel `events` in one PUBLISH when the script ends (flush), a
-- line each: ID\tSTATUS\tPROGRESS\tSTAGE\tTIME (TIME: µs on the Redis
-- clock). Subscribers (the API's event hub, `wakeq status --watch`) keep
-- the lines of the jobs they follow.
local events = {}
local function publish(id, status, progress, stage)
  if stage and string.find(stage, '[\t\n]') then
    stage = (string.gsub(stage, '[\t\n]', ' '))
  end
  events[#events + 1] = id .. '\t' .. status .. '\t' .. (progress or '') .. '\t'
    .. (stage or '') .. '\t' .. NOW_US_S
end

-- Push-back (docs/QUEUE.md "Push-back"): job id (hash jk, priority
-- prio) was answered 429 with Retry-After by the service it calls, so
-- its whole group g waits until `at` (ms): the job goes back to the
-- front of gpend:g, and g leaves the rotation (or gfull) for gwait,
-- where take brings it back at that time (a later hold wins). An
-- ungrouped job (g false or '') alone waits in delayed until `at`.
local function group_hold(g, prio, id, jk, at)
  if not g or g == '' then
    redis.call('HSET', jk, 'status', 'scheduled')
    redis.call('ZADD', P .. 'delayed', at, id)
    publish(id, 'scheduled')
    return
  end
  redis.call('HSET', jk, 'status', 'queued')
  redis.call('ZADD', P .. 'gpend:' .. g, (tonumber(prio) or 0) * BAND, id)
  if redis.call('SADD', P .. 'gin', g) == 1 then
    redis.call('HSET', P .. 'config', 'grouped', '1')
  end
  -- this script's cached config too: a take that re-creates the last
  -- group must count gwait in its next_due
  if CFG then CFG.grouped = true; CFG.limited = true end
  redis.call('LREM', P .. 'grr', 0, g)
  redis.call('SREM', P .. 'gfull', g)
  local cur = tonumber(redis.call('ZSCORE', P .. 'gwait', g))
  if not cur or cur < at then redis.call('ZADD', P .. 'gwait', at, g) end
  publish(id, 'queued')
end

-- Metrics that outlive the worker: the hash `metrics`, read by the API's
-- /metrics (queue_stats_read). Counts are added up while a script runs
-- and written by flush, one HINCRBY a field: a batch of jobs costs a few
-- calls, whatever its size. Fields are KIND:KEY:TYPE:
--   n:OUTCOME:TYPE   runs that ended so: done, retried, failed, cancelled,
--                    requeued (shutdown), expired (lease lost, run again),
--                    throttled (pushed back by a 429: group_hold)
--   w:B:TYPE         jobs whose wait (due or enqueued -> started) fell in
--   r:B:TYPE         bucket B, and runs whose run time did: B is the
--                    0-based index of the first bound of HIST_MS at or
--                    above the time, #HIST_MS when above them all
--   w:s:TYPE, r:s:TYPE  the sums of those times, µs
--   k:TRIGGER:       wakes of the workers of this queue (queue_count_wake)
-- Layout rule: HIST_MS and queue_hist_bounds_ms[] in queue.c change
-- together (tests/unit/queue checks that they agree).
local HIST_MS = { 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
  30000, 60000, 300000, 900000, 1800000, 3600000 }
local metric = {}
local function m_add(field, n) metric[field] = (metric[field] or 0) + n end
-- Field names are made once a script run per kind (or outcome) and type,
-- in nested tables: a Lua concatenation per job would make (and intern) a
-- new string each time, and one with a number formats it through sprintf.
local OKEYS = {}
local function m_outcome(type, name)
  type = type or ''
  local ks = OKEYS[name]
  if not ks then ks = {}; OKEYS[name] = ks end
  local k = ks[type]
  if not k then k = 'n:' .. name .. ':' .. type; ks[type] = k end
  metric[k] = (metric[k] or 0) + 1
end
-- Per job (a wait at take, a run at settle): MKEYS[kind][type][b + 1] is
-- bucket b's field, [0] the sum's.
local MKEYS = {}
local function m_observe(kind, type, us)
  if us < 0 then us = 0 end
  local b = #HIST_MS
  for i = 1, #HIST_MS do
    if us <= HIST_MS[i] * 1000 then b = i - 1; break end
  end
  type = type or ''
  local kt = MKEYS[kind]
  if not kt then kt = {}; MKEYS[kind] = kt end
  local ks = kt[type]
  if not ks then
    ks = { [0] = kind .. ':s:' .. type }
    for i = 0, #HIST_MS do ks[i + 1] = kind .. ':' .. i .. ':' .. type end
    kt[type] = ks
  end
  local k = ks[b + 1]
  metric[k] = (metric[k] or 0) + 1
  metric[ks[0]] = (metric[ks[0]] or 0) + us
end

-- Writes what the script gathered: the metrics, then the events. Every
-- script that publishes or counts calls it once, last, before it returns.
local function flush()
  for f, n in pairs(metric) do
    redis.call('HINCRBY', P .. 'metrics', f, string.format('%d', n))
  end
  if #events > 0 then redis.call('PUBLISH', P .. 'events', table.concat(events, '\n')) end
end

-- The finals log: while wakeq:{Q}:record exists (a process keeps Postgres
-- records for this queue), every job that ends is appended to the stream
-- wakeq:{Q}:finals in the same script, and stays there until a consumer
-- has written it to Postgres and deleted the entry (reconcile_finals). So
-- a completion Redis has seen is never lost by a crash of the process
-- that would copy it, and the done cap may evict the hash safely.
local recording = nil
local function record_final(id, jk, status, result, err)
  if recording == nil then
    recording = redis.call('EXISTS', P .. 'record') == 1
  end
  if not recording then return end
  local h = redis.call('HMGET', jk, 'attempts', 'started')
  local f = { 'id', id, 'status', status, 'attempts', h[1] or '0',
    'started', h[2] or '', 'finished', NOW_US_S }
  if result then f[#f + 1] = 'result'; f[#f + 1] = result end
  if err then f[#f + 1] = 'error'; f[#f + 1] = err end
  redis.call('XADD', P .. 'finals', '*', unpack(f))
end

-- RFC 3339 UTC with microseconds from epoch microseconds (days-to-civil
-- conversion on the proleptic Gregorian calendar).
local function rfc3339(us)
  local s = math.floor(us / 1000000)
  local frac = us - s * 1000000
  local days = math.floor(s / 86400)
  local rem = s - days * 86400
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d.%06dZ', y, m, d,
    math.floor(rem / 3600), math.floor(rem % 3600 / 60), rem % 60, frac)
end

-- A job reached an end state: when it has a callback URL, enqueue a
-- webhook.deliver job carrying the URL and the document to POST. Returns
-- true when it did.
local function webhook(id, jk, status, result, err)
  local h = redis.call('HMGET', jk, 'callback', 'type', 'attempts', 'priority',
    'batch', 'deps', 'dep_done', 'dep_failed', 'dep_cancelled')
  if not h[1] or h[1] == '' then return false end
  local body = { id = id, type = h[2], status = status,
    attempts = tonumber(h[3]) or 0, finished_at = rfc3339(NOW_US) }
  if h[5] == id then
    -- a batch's callback job: the batch's counts (docs/QUEUE.md)
    body.batch = { id = id, total = #cjson.decode(h[6] or '[]'),
      done = tonumber(h[7]) or 0, failed = tonumber(h[8]) or 0,
      cancelled = tonumber(h[9]) or 0 }
  end
  if status == 'done' then
    local ok, v = pcall(cjson.decode, result or 'null')
    body.result = ok and v or cjson.null
  else
    body.error = err or ''
  end
  local s = seq(1)
  local wid = string.format('%08x-%04x-7%03x-%s', math.floor(NOW / 65536),
    NOW % 65536, s % 4096, string.sub(id, 20))
  local prio = tonumber(h[4]) or 0
  -- Encoding cannot be allowed to fail mid-script (writes are not rolled
  -- back): a result too deep to encode is sent as null.
  local ok, payload = pcall(cjson.encode, { url = h[1], body = body })
  if not ok then
    body.result = cjson.null
    body.error = 'result could not be encoded'
    payload = cjson.encode({ url = h[1], body = body })
  end
  local tries, timeout = '10', '30'
  redis.call('HSET', P .. 'job:' .. wid, 'type', 'webhook.deliver',
    'payload', payload, 'status', 'queued',
    'priority', prio, 'attempts', 0, 'max_attempts', tries, 'timeout', timeout,
    -- the packed spec (internal/job/job.h), as enqueue writes it
    's', '@webhook.deliver\t' .. tries .. '\t' .. timeout,
    'created', NOW_US, 'run_at', NOW_US, 'parent', id)
  redis.call('ZADD', P .. 'pending', prio * BAND + s, wid)
  wake_markers(1)
  return true
end

-- Unique-while-active: uniq:KEY names the job holding KEY from its
-- enqueue until it ends. Every way a job ends (done in take's settle,
-- bury, finish_cancelled) lets its key go, given by the caller from the
-- job's own HMGET (`uk`, false or '' for none: no call then), and only
-- while the key still names this job.
local function unique_release(uk, id)
  if not uk or uk == '' then return end
  local k = P .. 'uniq:' .. uk
  if redis.call('GET', k) == id then redis.call('DEL', k) end
end

-- The live job holding unique key uk, or nil. A key whose job has gone
-- (its record lost) is free.
local function unique_holder(uk)
  local id = redis.call('GET', P .. 'uniq:' .. uk)
  if id and redis.call('EXISTS', P .. 'job:' .. id) == 1 then return id end
  return nil
end

-- Dependencies (below): every way a job ends tells its dependents.
local deps_settle

-- A job ends cancelled (`err` says why); its hash expires after ttl_s
-- (RESULT_TTL, whole seconds). cb: the job may have a callback URL; uk its
-- unique key. Returns true when a webhook delivery was queued.
local function finish_cancelled(id, jk, err, ttl_s, cb, uk)
  unique_release(uk, id)
  redis.call('HSET', jk, 'status', 'cancelled', 'error', err, 'token', '',
    'finished', NOW_US_S)
  redis.call('DEL', P .. 'dres:' .. id)
  redis.call('PEXPIRE', jk, ttl_s .. '000')
  redis.call('HINCRBY', P .. 'stats', 'cancelled', 1)
  publish(id, 'cancelled')
  record_final(id, jk, 'cancelled', nil, err)
  local sent = cb and webhook(id, jk, 'cancelled', nil, err) or false
  deps_settle(id, 'cancelled')
  return sent
end

-- Jobs failed for good in this script run, added to stats.failed (an
-- all-time total) once at its end by stats_flush.
local FAILED_N = 0
local function stats_flush()
  if FAILED_N > 0 then redis.call('HINCRBY', P .. 'stats', 'failed', FAILED_N) end
end

-- Moves a job to the dead set, capping it (oldest hashes deleted) and,
-- with the queue's dead_ttl (config_load ran), dropping those older than
-- it. cb: the job has a callback URL (a webhook job follows); uk its
-- unique key.
local function bury(id, jk, err, dead_max, cb, uk)
  unique_release(uk, id)
  FAILED_N = FAILED_N + 1
  redis.call('HSET', jk, 'status', 'failed', 'error', err, 'token', '',
    'finished', NOW_US)
  redis.call('DEL', P .. 'dres:' .. id)
  record_final(id, jk, 'failed', nil, err)
  redis.call('ZADD', P .. 'dead', NOW, id)
  local n = redis.call('ZCARD', P .. 'dead')
  if n > dead_max then
    local old = redis.call('ZPOPMIN', P .. 'dead', n - dead_max)
    for i = 1, #old, 2 do redis.call('DEL', P .. 'job:' .. old[i]) end
  end
  if CFG and CFG.dead_ttl then
    redis.call('PEXPIRE', jk, CFG.dead_ttl * 1000)
    redis.call('ZREMRANGEBYSCORE', P .. 'dead', '-inf', NOW - CFG.dead_ttl * 1000)
  end
  publish(id, 'failed')
  if cb then webhook(id, jk, 'failed', nil, err) end
  deps_settle(id, 'failed')
end

-- ---- dependencies ---------------------------------------------------------
-- A job with depends_on (hash field deps, a JSON array of ids of this
-- queue) waits, status waiting, in the zset `waiting` (id -> when it began
-- to wait, ms), until each dependency has ended: never in pending, so no
-- worker leases it or stays awake for it. Each unfinished dependency D
-- names its dependents in the set deps:D (and has the hash field
-- dependents, so the settle that ends it knows from the HMGET it already
-- makes); the dependent counts the dependencies left in ndeps and how the
-- others ended in dep_done, dep_failed, dep_cancelled (a batch's counts,
-- kept on its callback job). Every way a job ends (take's done settle,
-- bury, finish_cancelled) calls deps_settle, which takes deps:D away in
-- the same script, so each dependent hears of D once whoever ends it.
-- Retention for the jobs ended here by a failed dependency: take and
-- cancel set the process's (RESULT_TTL, the dead cap, from ARGV) under
-- the queue's config; enqueue the queue's config, else the defaults.
local RET = nil
local function ret()
  if not RET then
    local c = config_load()
    RET = { ttl = c.result_ttl or '86400', dead_max = c.dead_max or 10000 }
  end
  return RET
end
local RELEASED = 0  -- dependents this script run moved into pending

-- The statuses of the dependencies in dj (JSON array text): a table
-- {ids, st}, or nil and the first id that names no job of this queue.
local function deps_read(dj)
  local ids = cjson.decode(dj)
  local st, res = {}, {}
  for i = 1, #ids do
    local h = redis.call('HMGET', P .. 'job:' .. ids[i], 'status', 'result')
    if not h[1] then return nil, ids[i] end
    st[i], res[i] = h[1], h[2]
  end
  return { ids = ids, st = st, res = res }
end

-- Links the new job id to its dependencies (read by deps_read, with
-- their results: a done one's is copied, all in one HSET). Returns
-- how many it waits for, or, when one failed or was cancelled already
-- and policy is not ignore, 0, that one and how it ended (nothing
-- linked). A done one counts as done.
local function deps_link(id, dr, policy)
  local n = 0
  for i = 1, #dr.ids do
    local s = dr.st[i]
    if s == 'failed' or s == 'cancelled' then
      if policy ~= 'ignore' then return 0, dr.ids[i], s end
    elseif s ~= 'done' then
      n = n + 1
    end
  end
  local copies = {}
  for i = 1, #dr.ids do
    local s, r = dr.st[i], dr.res[i]
    if s == 'done' then
      if r and r ~= '' then
        copies[#copies + 1] = dr.ids[i]
        copies[#copies + 1] = r
      end
    elseif s ~= 'failed' and s ~= 'cancelled' then
      redis.call('SADD', P .. 'deps:' .. dr.ids[i], id)
      redis.call('HSET', P .. 'job:' .. dr.ids[i], 'dependents', '1')
    end
  end
  if #copies > 0 then redis.call('HSET', P .. 'dres:' .. id, unpack(copies)) end
  return n
end

-- The waiting job d (hash jk, h its HMGET below) ends because its
-- dependency `from` ended `how` (failed, cancelled): as its policy says.
local function deps_fail(d, jk, h, from, how)
  redis.call('ZREM', P .. 'waiting', d)
  local why = "dependency '" .. from .. "' " .. how
  local cb = h[6] and h[6] ~= ''
  if h[2] == 'cancel' then
    finish_cancelled(d, jk, why, ret().ttl, cb, h[7])
  else
    bury(d, jk, why, ret().dead_max, cb, h[7])
  end
end

-- A batch's callback (its field batch is its own id) learns the counts
-- in its payload (member `batch`) when it is released.
local function batch_payload(d, jk)
  local h = redis.call('HMGET', jk, 'payload', 'deps', 'dep_done', 'dep_failed',
    'dep_cancelled')
  local ok, p = pcall(cjson.decode, h[1] or '{}')
  if not ok or type(p) ~= 'table' then return end
  p.batch = { id = d, total = #cjson.decode(h[2] or '[]'),
    done = tonumber(h[3]) or 0, failed = tonumber(h[4]) or 0,
    cancelled = tonumber(h[5]) or 0 }
  redis.call('HSET', jk, 'payload', cjson.encode(p))
end

-- The results of the dependencies in dj (JSON array text) of job id as
-- a JSON object's text, {id: result}, for the job's handler (a flow's
-- parent reads its children's): a result is stored JSON text and goes in
-- as it is; a dependency without one (failed, cancelled) is null. They
-- come from dres:ID, where each done dependency's settle (or the link,
-- for one done before) copied its result, so a dependency's record
-- trimmed since (done_max, RESULT_TTL) still gives it; the record is the
-- fallback (a job re-run by retry_dead). The results together stay
-- within DEPS_RESULTS_MAX bytes (a take's reply is bounded: 1000
-- dependencies of 1 MiB would be 1 GiB): past it a dependency's result is
-- null, and the second value returned is 1 (cut), else 0.
local DEPS_RESULTS_MAX = 16 * 1024 * 1024
local function deps_results(id, dj)
  local ok, ids = pcall(cjson.decode, dj)
  if not ok or type(ids) ~= 'table' or #ids == 0 then return '', 0 end
  local kept = redis.call('HMGET', P .. 'dres:' .. id, unpack(ids))
  local parts, total, cut = {}, 0, 0
  for i = 1, #ids do
    local r = kept[i]
    if not r then r = redis.call('HGET', P .. 'job:' .. ids[i], 'result') end
    if not r or r == '' then r = 'null' end
    total = total + #r
    if total > DEPS_RESULTS_MAX then
      total = total - #r
      r = 'null'
      cut = 1
    end
    parts[i] = cjson.encode(ids[i]) .. ':' .. r
  end
  return '{' .. table.concat(parts, ',') .. '}', cut
end

-- Job id ended `how` (done, failed, cancelled; res: a done job's result
-- when the caller has it): its waiting dependents hear of it once. A
-- failure that ends dependents ends theirs in turn: the cascade runs from
-- a work list (DEP_WORK), not by recursion, and one script run handles at most DEP_CAP dependents; what is left goes, as
-- "how:id", to the list `depfail`, which the next take or cancel carries
-- on (deps_resume; docs/QUEUE.md "Dependencies").
local DEP_CAP = 1000
local DEP_WORK, DEP_HEAD, DEP_LEFT, DEP_DRAINING = {}, 1, DEP_CAP, false
local DEP_DEFERRED = false

-- Leaves id's dependents (still in deps:ID) for a later run.
local function deps_defer(id, how)
  redis.call('RPUSH', P .. 'depfail', how .. ':' .. id)
  if not DEP_DEFERRED then
    DEP_DEFERRED = true
    redis.call('HSET', P .. 'config', 'depfail', '1')
    wake_markers(1) -- a worker's take carries on
  end
end

-- The dependents of id (at most DEP_LEFT of them) hear that it ended how.
-- (SPOP takes the set's members away: one call, as SMEMBERS and DEL were
-- two.)
local function deps_one(id, how, res)
  local k = P .. 'deps:' .. id
  if DEP_LEFT <= 0 then return deps_defer(id, how) end
  local ms = redis.call('SPOP', k, DEP_LEFT)
  if #ms == 0 then return end
  DEP_LEFT = DEP_LEFT - #ms
  if DEP_LEFT <= 0 and redis.call('EXISTS', k) == 1 then deps_defer(id, how) end
  local pend, nrel = {}, 0
  for _, d in ipairs(ms) do
    local jk = P .. 'job:' .. d
    local h = redis.call('HMGET', jk, 'status', 'depfail', 'run_at', 'priority',
      'group', 'callback', 'unique', 'batch')
    if h[1] == 'waiting' then
      redis.call('HINCRBY', jk, 'dep_' .. how, 1)
      if how == 'done' then
        -- the dependent's copy (deps_results): id's record may be trimmed
        -- before the dependent runs
        if not res then res = redis.call('HGET', P .. 'job:' .. id, 'result') end
        if res and res ~= '' then redis.call('HSET', P .. 'dres:' .. d, id, res) end
      end
      if how ~= 'done' and h[2] ~= 'ignore' then
        deps_fail(d, jk, h, id, how)
      elseif redis.call('HINCRBY', jk, 'ndeps', -1) <= 0 then
        redis.call('ZREM', P .. 'waiting', d)
        if h[8] == d then batch_payload(d, jk) end
        local at = math.floor((tonumber(h[3]) or 0) / 1000)
        if at > NOW then
          redis.call('HSET', jk, 'status', 'scheduled')
          redis.call('ZADD', P .. 'delayed', at, d)
          publish(d, 'scheduled')
        else
          redis.call('HSET', jk, 'status', 'queued', 'run_at', NOW_US_S)
          pending_add(pend, h[4], d, false, h[5])
          publish(d, 'queued')
        end
        nrel = nrel + 1
      end
    end
  end
  pending_flush(pend)
  if nrel > 0 then
    RELEASED = RELEASED + nrel
    wake_markers(nrel)
  end
end

deps_settle = function(id, how, res)
  DEP_WORK[#DEP_WORK + 1] = { id, how, res }
  if DEP_DRAINING then return end -- the loop below gets to it
  DEP_DRAINING = true
  while DEP_HEAD <= #DEP_WORK do
    local w = DEP_WORK[DEP_HEAD]
    DEP_HEAD = DEP_HEAD + 1
    deps_one(w[1], w[2], w[3])
  end
  DEP_WORK, DEP_HEAD, DEP_DRAINING = {}, 1, false
end

-- Carries on the cascades an earlier run left in `depfail`, within this
-- run's DEP_CAP. Returns true when some are still left (a worker must
-- take again: the caller wakes one).
local function deps_resume()
  if not config_load().depfail then return false end
  local k = P .. 'depfail'
  while DEP_LEFT > 0 do
    local v = redis.call('LPOP', k)
    if not v then break end
    local how, id = string.match(v, '^(%a+):(.+)$')
    if how then deps_settle(id, how) end
  end
  if redis.call('EXISTS', k) == 1 then
    if not DEP_DEFERRED then wake_markers(1) end
    return true
  end
  redis.call('HDEL', P .. 'config', 'depfail')
  return false
end

-- ---- cron schedules ------------------------------------------------------
-- sched:NAME (hash) holds a schedule: cron, tz, overlap (allow|skip),
-- catchup (one|all|skip), catchup_max, paused, prio, the job template's
-- hash fields as h:FIELD, and what it did (last_fire, last_job, fired,
-- skipped). stimes:NAME (zset) holds its next fire times (ms), computed
-- ahead by the C side (queue_schedule_refill: cron and time zones are
-- not Lua's); `schedules` (zset) names each active schedule with its next
-- fire time; schedset (set) every schedule, paused ones too.
local SCHED_GRACE = 60000  -- ms: a fire time later than this is missed
local SCHED_LOW = 16       -- fire times ahead below which to refill

-- The job of schedule `name` for fire time t (ms): an id made from the
-- queue, the name and t, so a fire time makes one job whoever fires it.
local function schedule_job_id(name, t)
  local hx = redis.sha1hex(P .. name .. ':' .. t)
  return string.format('%08x-%04x-7%s-8%s-%s', math.floor(t / 65536), t % 65536,
    string.sub(hx, 1, 3), string.sub(hx, 4, 6), string.sub(hx, 7, 18))
end

-- Fires schedule `name`: takes its due fire times out of stimes:NAME (so
-- each is fired once, by one script), and makes a job for each one the
-- policies let through: the times more than SCHED_GRACE late are missed
-- (catchup skip: none of them, one: the last, all: the last catchup_max);
-- overlap skip lets none through while the last job has not ended, and a
-- held unique key none. Returns true when its times ahead run low.
local function schedule_fire(name)
  local sk = P .. 'sched:' .. name
  local tk = P .. 'stimes:' .. name
  local times = redis.call('ZRANGEBYSCORE', tk, '-inf', NOW, 'LIMIT', 0, 1000)
  local h = redis.call('HGETALL', sk)
  if #h == 0 then
    redis.call('ZREM', P .. 'schedules', name)
    return false
  end
  local sc, fields = {}, {}
  for i = 1, #h, 2 do
    if string.sub(h[i], 1, 2) == 'h:' then
      fields[#fields + 1] = string.sub(h[i], 3)
      fields[#fields + 1] = h[i + 1]
    else
      sc[h[i]] = h[i + 1]
    end
  end
  local fire, missed = {}, {}
  for i = 1, #times do
    local t = tonumber(times[i])
    if t < NOW - SCHED_GRACE then missed[#missed + 1] = t else fire[#fire + 1] = t end
  end
  local nskip = #missed
  if #missed > 0 and sc.catchup ~= 'skip' then
    local keep = sc.catchup == 'all' and (tonumber(sc.catchup_max) or 1) or 1
    local from = math.max(1, #missed - keep + 1)
    local ins = {}
    for i = from, #missed do ins[#ins + 1] = missed[i] end
    nskip = #missed - #ins
    for i = 1, #fire do ins[#ins + 1] = fire[i] end
    fire = ins
  end
  if #times > 0 then redis.call('ZREM', tk, unpack(times)) end
  local batch, made, last = {}, 0, sc.last_job
  local group, uk = nil, nil
  for i = 1, #fields, 2 do
    if fields[i] == 'group' then group = fields[i + 1] end
    if fields[i] == 'unique' then uk = fields[i + 1] end
  end
  for _, t in ipairs(fire) do
    local id = schedule_job_id(name, t)
    local live = false
    if sc.overlap ~= 'allow' and last and last ~= '' then
      local st = redis.call('HGET', P .. 'job:' .. last, 'status')
      live = st == 'queued' or st == 'scheduled' or st == 'active' or st == 'retrying'
    end
    if not live and uk and unique_holder(uk) then live = true end
    if live or redis.call('EXISTS', P .. 'job:' .. id) == 1 then
      nskip = nskip + 1
    else
      local f = { 'status', 'queued', 'priority', sc.prio or '0', 'attempts', '0',
        'created', NOW_US_S, 'run_at', string.format('%d', t * 1000),
        'schedule', name }
      for k = 1, #fields do f[#f + 1] = fields[k] end
      redis.call('HSET', P .. 'job:' .. id, unpack(f))
      if uk then redis.call('SET', P .. 'uniq:' .. uk, id) end
      pending_add(batch, sc.prio, id, false, group)
      publish(id, 'queued')
      made = made + 1
      last = id
    end
  end
  pending_flush(batch)
  local upd = { 'last_fire', string.format('%d', NOW) }
  if made > 0 then
    upd[#upd + 1] = 'last_job'; upd[#upd + 1] = last
    redis.call('HINCRBY', sk, 'fired', made)
  end
  if nskip > 0 then redis.call('HINCRBY', sk, 'skipped', nskip) end
  redis.call('HSET', sk, unpack(upd))
  local nx = redis.call('ZRANGE', tk, 0, 0, 'WITHSCORES')
  local low = redis.call('ZCARD', tk) < SCHED_LOW
  if #nx > 0 then
    redis.call('ZADD', P .. 'schedules', nx[2], name)
  else
    -- out of times: due again in a minute unless refilled before
    redis.call('ZADD', P .. 'schedules', NOW + SCHED_GRACE, name)
  end
  return low
end

-- Fires every due schedule (config.scheduled). Returns 1 when one of them
-- needs more fire times (the caller runs queue_schedule_refill).
local function schedules_fire()
  local due = redis.call('ZRANGEBYSCORE', P .. 'schedules', '-inf', NOW, 'LIMIT', 0, 100)
  local low = false
  for i = 1, #due do
    if schedule_fire(due[i]) then low = true end
  end
  return low and 1 or 0
end
