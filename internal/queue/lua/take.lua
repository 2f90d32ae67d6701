-- take: settle finished runs, promote due delayed jobs, reclaim expired
-- leases, then lease up to MAX due jobs.
-- ARGV: worker, lease_ms, max, nsettle, result_ttl_s, done_max, dead_max,
-- reg_ttl (ms; > 0 registers the worker as register.lua does, so that an
-- idle cron tick is one take and one retire), record ('1': the caller
-- keeps Postgres records, so the finals log is turned on before anything
-- is settled), nwakes, then nwakes trigger, count pairs: wakes to add to
-- the metrics (queue_count_wake's k:TRIGGER:). Then the settles, each:
-- id, token, outcome (d=done r=retry f=fail c=cancelled q=requeue
-- b=pushed back by the upstream's rate limit, its group held delay_ms),
-- run_us (how long the run took, for the run-time histogram; negative:
-- not measured), then for d the result, for any other outcome the error
-- and delay_ms (an argument costs Redis as a field read does: a done
-- settle sends none it does not use).
-- Returns { TAKE_* head, then TAKE_JOB_* fields a job }. flags has one
-- letter a settle: o applied, f applied and final, s stale (refused).
-- paused is 1 when the queue is paused (nothing was leased from it).
-- TAKE_JOB_SPEC: the packed spec (field s, internal/job/job.h: type,
-- max_attempts, timeout, and flags naming the optional fields the record
-- holds). After TAKE_JOB_PAYLOAD come only the optional fields the flags
-- name, in this order: the callback URL (S_CALLBACK), the trace
-- (S_TRACE), then (S_DEPS) the dependencies' results as a JSON object
-- {id: result} (deps_results) and 1 when some were left out (null) to keep
-- them within 16 MiB, else 0. A plain job is 5 strings.
-- next_due: when nothing was leased, when to look again (a delayed job, a
-- lease expiry, a rate limit's next token, a cron schedule's next fire
-- time, or now while a failure's cascade is left in depfail); when jobs
-- were leased but a rate limit held others back, that token's time; else 0. finals: with record, the entries waiting in the
-- finals log (the caller's records writer copies them), else 0. refill is 1 when a cron schedule fired here runs
-- low on the fire times computed ahead (the caller runs
-- queue_schedule_refill).
-- Layout rule: these offsets (1-based here) and the names in queue.c
-- change together.
-- Every state change is published (one PUBLISH a run: flush), `active`
-- included; ended runs, wait and run times are counted in `metrics`.
-- keys (all under KEYS[1] = wakeq:{QUEUE}:): config, uniq:KEY, job:ID, deps:ID, waiting, active, pending, gpend:G, gin, grr, gwait, gfull, gact:G, rate, grate:G, schedules, sched:NAME, stimes:NAME, delayed, done, dead, stats, seq, marker, record, finals, metrics, workers; events; webhook: job:WID.
local TAKE_NOW, TAKE_NEXT_DUE, TAKE_FLAGS, TAKE_COUNT, TAKE_PAUSED,
  TAKE_REFILL, TAKE_FINALS, TAKE_HEAD = 1, 2, 3, 4, 5, 6, 7, 7
local TAKE_JOB_ID, TAKE_JOB_TOKEN, TAKE_JOB_ATTEMPTS, TAKE_JOB_SPEC,
  TAKE_JOB_PAYLOAD = 1, 2, 3, 4, 5
local worker = ARGV[1]
local lease = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local nsettle = tonumber(ARGV[4])
local ttl = ARGV[5]
local done_max = tonumber(ARGV[6])
local dead_max = tonumber(ARGV[7])
local cfg = config_load()
local PUSHBACK_MAX = 50 -- push-backs of one job; more count as attempts
-- the queue's own retention, over the process's defaults
if cfg.result_ttl then ttl = cfg.result_ttl end
done_max = cfg.done_max or done_max
dead_max = cfg.dead_max or dead_max
local reg_ttl = tonumber(ARGV[8])
if reg_ttl > 0 then
  redis.call('ZREMRANGEBYSCORE', P .. 'workers', '-inf', NOW_S)
  redis.call('ZADD', P .. 'workers', string.format('%d', NOW + reg_ttl), worker)
end
local rec = ARGV[9] == '1'
if rec then
  if redis.call('EXISTS', P .. 'record') == 0 then redis.call('SET', P .. 'record', '1') end
  recording = true
end
local b = 11 + 2 * tonumber(ARGV[10]) -- the first settle
for i = 11, b - 1, 2 do m_add('k:' .. ARGV[i] .. ':', tonumber(ARGV[i + 1])) end
RET = { ttl = ttl, dead_max = dead_max } -- for jobs a failed dependency ends

-- The packed spec, field s (internal/job/job.h: FLAGS TYPE\tMAX_ATTEMPTS
-- \tTIMEOUT, FLAGS '@' + the S_* bits of the optional fields the record
-- holds): a lease reads it and the payload where it read six fields, a
-- settle it where it read four (docs/QUEUE.md "Engine costs"). A record
-- written before it has none: spec_pack makes it from the fields.
local S_CALLBACK, S_UNIQUE, S_GROUP, S_TRACE, S_DEPS = 1, 2, 4, 8, 16
local function spec_flags(s) return string.byte(s) - 64 end
local function spec_type(s) return string.sub(s, 2, string.find(s, '\t', 2, true) - 1) end
local function spec_pack(jk)
  local o = redis.call('HMGET', jk, 'type', 'max_attempts', 'timeout',
    'callback', 'unique', 'group', 'trace', 'deps')
  if not o[1] then return nil end
  local f, bit1 = 0, 1
  for i = 4, 8 do
    if o[i] and o[i] ~= '' then f = f + bit1 end
    bit1 = bit1 * 2
  end
  -- numbers as C's job_spec_unpack reads them, whatever wrote the fields
  local to = tonumber(o[3]) or 0
  return string.char(64 + f) .. o[1] .. '\t' ..
    string.format('%d', math.max(0, tonumber(o[2]) or 1)) .. '\t' ..
    string.format('%.17g', (to >= 0 and to < 1e12) and to or 0)
end

local flags = {}
local unlease = {}
local done = {}
local stale = 0
local nretry = 0
for _ = 1, nsettle do
  local id, tok, kind = ARGV[b], ARGV[b + 1], ARGV[b + 2]
  local run_us = tonumber(ARGV[b + 3]) or -1
  -- the result of a done run, the error (and delay) of any other
  local res, e, delay = ARGV[b + 4], ARGV[b + 4], ARGV[b + 5]
  b = b + (kind == 'd' and 5 or 6)
  local jk = P .. 'job:' .. id
  -- A run done (the common case) needs the token (fencing), the packed
  -- spec (type, and flags for callback, unique key, group, dependencies)
  -- and dependents; the unique key and group are read only when flagged,
  -- attempts, max_attempts, priority and the cancel mark only for the
  -- outcomes that use them (docs/QUEUE.md "Engine costs").
  local h = redis.call('HMGET', jk, 'token', 's', 'dependents')
  local token, sp, dependents = h[1], h[2], h[3]
  if token == tok and not sp then sp = spec_pack(jk) end
  local cb, uk, grp, jtype, depfail = false, nil, nil, nil, false
  if token == tok and sp then
    local f = spec_flags(sp)
    jtype = spec_type(sp)
    cb = bit.band(f, S_CALLBACK) ~= 0
    depfail = bit.band(f, S_DEPS) ~= 0 -- depfail is set with deps
    if bit.band(f, S_UNIQUE + S_GROUP) ~= 0 then
      local x = redis.call('HMGET', jk, 'unique', 'group')
      uk, grp = x[1], x[2]
    end
  end
  local attempts, max_attempts, prio, cancel
  if kind ~= 'd' and token == tok then
    local x = redis.call('HMGET', jk, 'attempts', 'max_attempts', 'priority', 'cancel')
    attempts, max_attempts, prio, cancel = x[1], x[2], x[3], x[4]
  end
  if cancel and (kind == 'q' or kind == 'b') then kind = 'c' end
  if token ~= tok then
    stale = stale + 1
    flags[#flags + 1] = 's'
  else
    unlease[#unlease + 1] = id
    group_release(grp, id)
    -- a service that answers 429 for ever: past PUSHBACK_MAX push-backs
    -- the run is an ordinary retry (its attempt counts)
    if kind == 'b' and redis.call('HINCRBY', jk, 'pushbacks', 1) > PUSHBACK_MAX then
      kind = 'r'
    end
    local fl = 'f'
    if kind ~= 'q' and run_us >= 0 then m_observe('r', jtype, run_us) end
    if kind == 'd' then
      redis.call('HSET', jk, 'status', 'done', 'result', res, 'token', '',
        'progress', '100', 'finished', NOW_US_S)
      record_final(id, jk, 'done', res, nil)
      unique_release(uk, id)
      -- no PEXPIRE: the done set (scored by finish time) is the record's
      -- retention, trimmed in bulk below (docs/QUEUE.md "Engine costs")
      done[#done + 1] = NOW_S
      done[#done + 1] = id
      publish(id, 'done', '100')
      m_outcome(jtype, 'done')
      if cb then webhook(id, jk, 'done', res, nil) end
      if dependents then deps_settle(id, 'done', res) end
      if depfail then redis.call('DEL', P .. 'dres:' .. id) end -- deps_results' copies
    elseif kind == 'r' and tonumber(attempts) < tonumber(max_attempts) then
      fl = 'o'
      -- run_at: when it is due again (the wait time counts from there)
      local due = NOW + tonumber(delay)
      redis.call('HSET', jk, 'status', 'retrying', 'error', e, 'token', '',
        'run_at', string.format('%d', due * 1000))
      redis.call('ZADD', P .. 'delayed', due, id)
      nretry = nretry + 1
      publish(id, 'retrying')
      m_outcome(jtype, 'retried')
    elseif kind == 'r' or kind == 'f' then
      bury(id, jk, e, dead_max, cb, uk)
      m_outcome(jtype, 'failed')
    elseif kind == 'c' then
      finish_cancelled(id, jk, e, ttl, cb, uk)
      m_outcome(jtype, 'cancelled')
    elseif kind == 'b' then
      -- pushed back (a 429 with Retry-After): queued again, attempt not
      -- counted, its group held until then (group_hold)
      fl = 'o'
      local at = NOW + tonumber(delay)
      redis.call('HSET', jk, 'token', '', 'error', e,
        'attempts', math.max(0, tonumber(attempts) - 1),
        'run_at', string.format('%d', at * 1000))
      group_hold(grp, prio, id, jk, at)
      m_outcome(jtype, 'throttled')
    else -- requeue at the front of its band, attempt not counted
      fl = 'o'
      redis.call('HSET', jk, 'status', 'queued', 'token', '',
        'attempts', math.max(0, tonumber(attempts) - 1), 'run_at', NOW_US_S)
      m_outcome(jtype, 'requeued')
      local front = {}
      pending_add(front, prio, id, true, grp)
      pending_flush(front)
      publish(id, 'queued')
      wake_markers(1)
    end
    flags[#flags + 1] = fl
  end
end
if #unlease > 0 then
  redis.call('ZREM', P .. 'active', unpack(unlease))
  -- room under the queue's concurrency cap: idle workers look
  if cfg.conc then wake_markers(1) end
end
-- Deletes the records of the done jobs ids[1], ids[1 + step], ... (step
-- 2 for a reply with scores between) and counts them in
-- stats.done_trimmed: the all-time total of done jobs is it plus the done
-- set's size.
local function drop_done(ids, step)
  local keys = {}
  for i = 1, #ids, step do keys[#keys + 1] = P .. 'job:' .. ids[i] end
  redis.call('DEL', unpack(keys))
  redis.call('HINCRBY', P .. 'stats', 'done_trimmed', #keys)
end
if #done > 0 then
  redis.call('ZADD', P .. 'done', unpack(done))
  local n = redis.call('ZCARD', P .. 'done')
  if n > done_max + math.floor(done_max / 100) then
    -- Over the cap by 1 % (so a busy queue trims once every done_max/100
    -- jobs, not every batch): the oldest finished jobs go down to the
    -- cap, hashes included (they would otherwise live out RESULT_TTL
    -- unlisted).
    drop_done(redis.call('ZPOPMIN', P .. 'done', n - done_max), 2)
  end
end
-- Retention of done records: those finished more than the queue's
-- result_ttl ago go here, up to 1000 a run, hashes and all (one call a
-- run when none is due, rather than a PEXPIRE a job at settle). Counted
-- in stats.done_trimmed, as the cap's are, so done totals stay whole.
local aged = redis.call('ZRANGEBYSCORE', P .. 'done', '-inf',
  string.format('%d', NOW - tonumber(ttl) * 1000), 'LIMIT', '0', '1000')
if #aged > 0 then
  drop_done(aged, 1)
  redis.call('ZREM', P .. 'done', unpack(aged))
end
-- Cascades an earlier run left for later (deps_settle's cap) go on here.
local depmore = deps_resume() or DEP_DEFERRED
if stale > 0 then redis.call('HINCRBY', P .. 'stats', 'stale', stale) end
if nretry > 0 then redis.call('HINCRBY', P .. 'stats', 'retrying', nretry) end

-- Promote due delayed jobs into pending.
local due = redis.call('ZRANGEBYSCORE', P .. 'delayed', '-inf', NOW_S, 'LIMIT', '0', '1000')
if #due > 0 then
  local pend = {}
  local retried = 0
  for i = 1, #due do
    local jk = P .. 'job:' .. due[i]
    local h = redis.call('HMGET', jk, 'priority', 'status', 'group')
    if h[1] then
      if h[2] == 'retrying' then retried = retried + 1 end
      redis.call('HSET', jk, 'status', 'queued')
      pending_add(pend, h[1], due[i], false, h[3])
      publish(due[i], 'queued')
    end
  end
  redis.call('ZREM', P .. 'delayed', unpack(due))
  pending_flush(pend)
  if retried > 0 then redis.call('HINCRBY', P .. 'stats', 'retrying', -retried) end
end

-- Reclaim expired leases: their holder is gone. The attempt counts when the
-- worker had reported the run begun (renew.lua sets `ran`); a job only
-- leased (ahead of a slot, or killed with its worker before its handler
-- started) gets its attempt back.
local UNSTARTED_MAX = 20
local exp = redis.call('ZRANGEBYSCORE', P .. 'active', '-inf', NOW_S, 'LIMIT', '0', '1000')
if #exp > 0 then
  local pend = {}
  for i = 1, #exp do
    local id = exp[i]
    local jk = P .. 'job:' .. id
    local h = redis.call('HMGET', jk, 'attempts', 'max_attempts', 'priority',
      'worker', 'cancel', 'callback', 'token', 'ran', 'unstarted', 'unique',
      'group', 'type')
    local cb = h[6] and h[6] ~= ''
    if h[1] then
      group_release(h[11], id)
      local msg = 'lease expired (worker ' .. (h[4] or '?') .. ' stopped renewing it)'
      local att = tonumber(h[1])
      local unstarted = tonumber(h[9]) or 0
      if h[8] ~= h[7] and att > 0 then
        -- Leased (a batch taken ahead) but never seen running: the
        -- attempt does not count. UNSTARTED_MAX bounds a job that kills
        -- its worker before the first heartbeat reports it running.
        att = att - 1
        unstarted = unstarted + 1
        redis.call('HSET', jk, 'attempts', att, 'unstarted', unstarted)
      end
      if h[5] then
        finish_cancelled(id, jk, 'cancelled', ttl, cb, h[10])
        m_outcome(h[12], 'cancelled')
      elseif unstarted > UNSTARTED_MAX then
        bury(id, jk, 'lease expired ' .. unstarted .. ' times before it was seen running (worker '
          .. (h[4] or '?') .. ')', dead_max, cb, h[10])
        m_outcome(h[12], 'failed')
      elseif att >= tonumber(h[2]) then
        bury(id, jk, msg, dead_max, cb, h[10])
        m_outcome(h[12], 'failed')
      else
        redis.call('HSET', jk, 'status', 'queued', 'token', '', 'error', msg,
          'run_at', NOW_US_S)
        pending_add(pend, h[3], id, true, h[11])
        publish(id, 'queued')
        m_outcome(h[12], 'expired')
      end
    end
  end
  redis.call('ZREM', P .. 'active', unpack(exp))
  pending_flush(pend)
  redis.call('HINCRBY', P .. 'stats', 'reclaimed', #exp)
end

-- Due cron schedules make their jobs (docs/QUEUE.md "Cron schedules").
local refill = cfg.scheduled and schedules_fire() or 0

local out = {}
out[TAKE_NOW] = NOW; out[TAKE_NEXT_DUE] = 0
out[TAKE_FLAGS] = table.concat(flags); out[TAKE_COUNT] = 0
out[TAKE_PAUSED] = cfg.paused and 1 or 0
out[TAKE_REFILL] = refill
out[TAKE_FINALS] = 0
if cfg.paused and want > 0 then
  -- Paused: settles apply, nothing is leased. Stale wake markers go, so
  -- a worker that also serves other queues does not spin on them.
  redis.call('DEL', P .. 'marker')
  want = 0
end
-- Leases the jobs `ids` (in order; gids[i] the group of ids[i], or false)
-- under one fresh fencing token into `out`.
local function lease_jobs(ids, gids)
  if #ids == 0 then return end
  -- One token for the batch: a job is leased once in it, and each lease
  -- of a job has a token no earlier lease had (seq never goes back), which
  -- is all fencing needs; one number formatted a run, not one a job.
  local tok = string.format('%d', seq(1)) -- tostring would print 1e+14
  local leased = {}
  for i = 1, #ids do
    local id = ids[i]
    local jk = P .. 'job:' .. id
    local h = redis.call('HMGET', jk, 's', 'payload', 'attempts', 'run_at')
    local sp = h[1] or (h[3] and spec_pack(jk))
    if sp then
      local att = tonumber(h[3]) + 1
      -- no 'ran' reset: a mark left by an earlier lease names its token,
      -- never this one (tokens are not reused), so the reclaim is right
      redis.call('HSET', jk, 'status', 'active',
        'attempts', h[3] == '0' and '1' or tostring(att), 'token', tok,
        'worker', worker, 'started', NOW_US_S)
      -- a record without s gets it now: its settle reads it as any other's
      if not h[1] then redis.call('HSET', jk, 's', sp) end
      if gids and gids[i] then redis.call('SADD', P .. 'gact:' .. gids[i], id) end
      leased[#leased + 1] = id
      publish(id, 'active')
      m_observe('w', spec_type(sp), NOW_US - (tonumber(h[4]) or NOW_US))
      local o = #out
      out[o + TAKE_JOB_ID] = id; out[o + TAKE_JOB_TOKEN] = tok
      out[o + TAKE_JOB_ATTEMPTS] = att; out[o + TAKE_JOB_SPEC] = sp
      out[o + TAKE_JOB_PAYLOAD] = h[2] or '{}'
      -- the optional fields the spec's flags name, in this order
      local f = spec_flags(sp)
      if bit.band(f, S_CALLBACK + S_TRACE + S_DEPS) ~= 0 then
        local x = redis.call('HMGET', jk, 'callback', 'trace', 'deps')
        if bit.band(f, S_CALLBACK) ~= 0 then out[#out + 1] = x[1] or '' end
        if bit.band(f, S_TRACE) ~= 0 then out[#out + 1] = x[2] or '' end
        if bit.band(f, S_DEPS) ~= 0 then
          local dres, cut = '', 0
          if x[3] then dres, cut = deps_results(id, x[3]) end
          out[#out + 1] = dres; out[#out + 1] = cut
        end
      end
      out[TAKE_COUNT] = out[TAKE_COUNT] + 1
    end
  end
  -- Newest first: the batch's members share their score and ids grow with
  -- time, so while `active` is small (a listpack, scanned from its head
  -- for each insert) each goes in at the head of the batch's run, not
  -- after all of it (docs/QUEUE.md "Engine costs").
  if #leased > 0 then
    local deadline, za = string.format('%d', NOW + lease), {}
    for i = #leased, 1, -1 do za[#za + 1] = deadline; za[#za + 1] = leased[i] end
    redis.call('ZADD', P .. 'active', unpack(za))
  end
end

-- The limited path (docs/QUEUE.md "Rate limits and concurrency"): up to
-- `want` job ids under the queue's concurrency cap and rate, serving the
-- groups round robin (one job a visit; a visit to a group at its cap or
-- out of tokens takes it out of the rotation, into gfull or gwait), the
-- ungrouped jobs taking one turn a round. Returns ids, their groups, and
-- when work held back by a rate limit may go (ms, 0 none).
local function take_limited(want)
  local ids, gids, held = {}, {}, 0
  local function hold(t)
    if t > 0 and (held == 0 or t < held) then held = t end
  end
  local room = want
  if cfg.conc then
    room = math.min(room, cfg.conc - redis.call('ZCARD', P .. 'active'))
  end
  if cfg.rate_max then
    room = math.min(room, (bucket_room(P .. 'rate', cfg.rate_max, cfg.rate_ms)))
  end
  local ngr = 0
  if cfg.grouped then
    -- rate-limited groups whose time came rejoin the rotation
    local back = redis.call('ZRANGEBYSCORE', P .. 'gwait', '-inf', NOW, 'LIMIT', 0, 1000)
    if #back > 0 then
      redis.call('ZREM', P .. 'gwait', unpack(back))
      redis.call('LPUSH', P .. 'grr', unpack(back))
    end
    ngr = redis.call('LLEN', P .. 'grr')
  end
  local plain = room > 0       -- ungrouped jobs may be waiting
  local gact = {}              -- a group's active jobs, read once
  while room > 0 and (plain or ngr > 0) do
    if plain then
      local pop = redis.call('ZPOPMIN', P .. 'pending', ngr > 0 and 1 or room)
      if #pop == 0 then plain = false end
      for i = 1, #pop, 2 do
        ids[#ids + 1] = pop[i]; gids[#gids + 1] = false; room = room - 1
      end
    end
    if room > 0 and ngr > 0 then
      local g = redis.call('RPOPLPUSH', P .. 'grr', P .. 'grr')
      local out_of_turn, at = nil, 0
      if cfg.gconc then
        gact[g] = gact[g] or redis.call('SCARD', P .. 'gact:' .. g)
        if gact[g] >= cfg.gconc then out_of_turn = 'full' end
      end
      if not out_of_turn and cfg.grate_max then
        local n
        n, at = bucket_room(P .. 'grate:' .. g, cfg.grate_max, cfg.grate_ms)
        if n == 0 then out_of_turn = 'wait' end
      end
      if not out_of_turn then
        local pop = redis.call('ZPOPMIN', P .. 'gpend:' .. g, 1)
        if #pop == 0 then
          out_of_turn = 'gone'
        else
          ids[#ids + 1] = pop[1]; gids[#gids + 1] = g; room = room - 1
          if cfg.gconc then gact[g] = gact[g] + 1 end
          if cfg.grate_max then
            bucket_spend(P .. 'grate:' .. g, cfg.grate_max, cfg.grate_ms, 1)
          end
        end
      end
      if out_of_turn then
        redis.call('LPOP', P .. 'grr') -- g, at the head since the RPOPLPUSH
        ngr = ngr - 1
        if out_of_turn == 'full' then
          redis.call('SADD', P .. 'gfull', g)
        elseif out_of_turn == 'wait' then
          redis.call('ZADD', P .. 'gwait', at, g)
        else
          redis.call('SREM', P .. 'gin', g)
        end
      end
    end
  end
  if cfg.rate_max then
    if #ids > 0 then bucket_spend(P .. 'rate', cfg.rate_max, cfg.rate_ms, #ids) end
    -- out of tokens with work left: when the next one comes
    local n, at = bucket_room(P .. 'rate', cfg.rate_max, cfg.rate_ms)
    if n == 0 and (ngr > 0 or redis.call('ZCARD', P .. 'pending') > 0) then hold(at) end
  end
  if cfg.grouped then
    local w = redis.call('ZRANGE', P .. 'gwait', 0, 0, 'WITHSCORES')
    if #w > 0 then hold(tonumber(w[2])) end
    if ngr == 0 and not plain and redis.call('SCARD', P .. 'gin') == 0 then
      redis.call('HDEL', P .. 'config', 'grouped') -- no group left
    end
  end
  bucket_flush()
  return ids, gids, held
end

local held = 0
if want > 0 then
  if cfg.limited then
    local ids, gids
    ids, gids, held = take_limited(want)
    lease_jobs(ids, gids)
  else
    -- the ids alone (ZPOPMIN would send each score across too)
    local ids = redis.call('ZRANGE', P .. 'pending', '0', want - 1)
    if #ids > 0 then redis.call('ZREMRANGEBYRANK', P .. 'pending', '0', #ids - 1) end
    lease_jobs(ids, nil)
  end
end
stats_flush()
out[TAKE_NEXT_DUE] = held
if out[TAKE_COUNT] == 0 and want > 0 then
  -- Nothing due: tell the worker when to look again, and drop stale wake
  -- markers so its blocking wait does not return at once for nothing.
  local nd = redis.call('ZRANGE', P .. 'delayed', 0, 0, 'WITHSCORES')
  local na = redis.call('ZRANGE', P .. 'active', 0, 0, 'WITHSCORES')
  local next_due = held
  if #nd > 0 and (next_due == 0 or tonumber(nd[2]) < next_due) then
    next_due = tonumber(nd[2])
  end
  if #na > 0 and (next_due == 0 or tonumber(na[2]) < next_due) then
    next_due = tonumber(na[2])
  end
  if cfg.scheduled then
    local ns = redis.call('ZRANGE', P .. 'schedules', 0, 0, 'WITHSCORES')
    if #ns > 0 and (next_due == 0 or tonumber(ns[2]) < next_due) then
      next_due = tonumber(ns[2])
    end
  end
  -- dependents of a failure still to hear of it: look again at once
  if depmore then next_due = NOW end
  out[TAKE_NEXT_DUE] = next_due
  redis.call('DEL', P .. 'marker')
end
if rec then out[TAKE_FINALS] = redis.call('XLEN', P .. 'finals') end
flush()
return out
