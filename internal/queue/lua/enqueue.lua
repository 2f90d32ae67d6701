-- enqueue: ARGV[1] = number of jobs, then a job each: the ENQ_* fields
-- below, then ENQ_NFIELDS pairs of hash field and value stored as given
-- (type, payload, max_attempts, timeout, idem, callback, trace, unique,
-- group: job_spec_hash in internal/job lists them; the script needs to
-- know none). ENQ_UNIQUE ('' none): while uniq:KEY names a live job, that
-- job is the answer (created 0), as for an idempotency key. ENQ_GROUP (''
-- none): the job waits in its group's pending set (pending_add).
-- ENQ_DEPS ('' none): a JSON array of the ids of jobs of this queue it
-- depends on; ENQ_DEPFAIL its policy (fail, cancel, ignore): it waits in
-- `waiting` until they end (_lib.lua "dependencies"); an id that names no
-- job refuses the job (created 0, missing = that id; nothing claimed).
-- ENQ_OPTS '1': ENQ_IDEM, ENQ_IDEM_TTL, ENQ_UNIQUE, ENQ_GROUP, ENQ_DEPS and
-- ENQ_DEPFAIL follow it, then the fields; '': none of them (all ''), the
-- fields at once: an argument costs Redis as a field read does, so a
-- plain job sends none it does not use.
-- Returns { ENQ_REPLY_LIVE: live_worker (0/1), ENQ_REPLY_STATES: a letter a
-- job, then for each job lettered e or m, in order, one string }: q
-- queued, s scheduled, w waiting, f failed, c cancelled (created, in that
-- state); e not created, an existing job holds its idempotency or unique
-- key (the string: that job's id); m refused, a dependency names no job
-- (the string: that id). A created job's id is the one given: the reply
-- does not carry it (a string a job costs ~1,000 instructions). On a
-- paused queue live_worker is 1 and no marker is pushed: nothing could
-- run the jobs, so no worker is to be woken for them (resume does it).
-- ENQ_DEADLINE, the last ARGV: a time in ms on this server's clock (0
-- none); past it the script refuses with DEADLINE and changes nothing, so
-- that a script a frozen server runs when it thaws, after its client gave
-- up on it, cannot queue jobs the client was told were refused.
-- Layout rule: these offsets and the ENQ_* names in queue.c change together.
-- keys (all under KEYS[1] = wakeq:{QUEUE}:): config, idem:KEY, uniq:KEY, job:ID, deps:ID, waiting, dead, stats, pending, gpend:G, gin, grr, delayed, seq, marker, workers.
local ENQ_ID, ENQ_PRIORITY, ENQ_RUN_AT, ENQ_DELAY, ENQ_NFIELDS, ENQ_OPTS,
  ENQ_EACH = 0, 1, 2, 3, 4, 5, 6
local ENQ_IDEM, ENQ_IDEM_TTL, ENQ_UNIQUE, ENQ_GROUP, ENQ_DEPS, ENQ_DEPFAIL,
  ENQ_EACH_OPTS = 6, 7, 8, 9, 10, 11, 12
local ENQ_DEADLINE = tonumber(ARGV[#ARGV])
if ENQ_DEADLINE > 0 and NOW > ENQ_DEADLINE then
  return redis.error_reply('DEADLINE enqueue reached redis ' .. (NOW - ENQ_DEADLINE) .. ' ms past its deadline')
end
local n = tonumber(ARGV[1])
local ENQ_REPLY_LIVE, ENQ_REPLY_STATES = 1, 2
local ENQ_LETTER = { queued = 'q', scheduled = 's', waiting = 'w', failed = 'f',
  cancelled = 'c' }
local out = { 0, '' } -- ENQ_REPLY_LIVE, ENQ_REPLY_STATES, then the extras
local st = {}
local pend = {}
local created = 0
local nxt = 2
for i = 1, n do
  local b = nxt
  local id = ARGV[b + ENQ_ID]
  local nf = tonumber(ARGV[b + ENQ_NFIELDS])
  local ik, ittl, uk, grp, dj, dpol = '', 0, '', '', '', ''
  local fb = b + ENQ_EACH
  if ARGV[b + ENQ_OPTS] == '1' then
    ik, ittl, uk = ARGV[b + ENQ_IDEM], ARGV[b + ENQ_IDEM_TTL], ARGV[b + ENQ_UNIQUE]
    grp, dj, dpol = ARGV[b + ENQ_GROUP], ARGV[b + ENQ_DEPS], ARGV[b + ENQ_DEPFAIL]
    fb = b + ENQ_EACH_OPTS
  end
  nxt = fb + 2 * nf
  local existing = nil
  if ik ~= '' then existing = redis.call('GET', P .. 'idem:' .. ik) end
  if not existing and uk ~= '' then existing = unique_holder(uk) end
  local dr, missing = nil, nil
  if not existing and dj ~= '' then dr, missing = deps_read(dj) end
  if not existing and not missing then
    if ik ~= '' then
      redis.call('SET', P .. 'idem:' .. ik, id, 'EX', tonumber(ittl))
    end
    if uk ~= '' then redis.call('SET', P .. 'uniq:' .. uk, id) end
  end
  if existing then
    st[#st + 1] = 'e'; out[#out + 1] = existing
  elseif missing then
    st[#st + 1] = 'm'; out[#out + 1] = missing
  else
    local prio = ARGV[b + ENQ_PRIORITY]
    local run_at = tonumber(ARGV[b + ENQ_RUN_AT])
    if run_at == 0 then run_at = NOW + tonumber(ARGV[b + ENQ_DELAY]) end
    local status = 'queued'
    local nd, fdep, fhow = 0, nil, nil
    if dr then nd, fdep, fhow = deps_link(id, dr, dpol) end
    if fdep or nd > 0 then
      -- waits for its dependencies (or ends at once below): not due
      status = 'waiting'
      if run_at < NOW then run_at = NOW end
      if not fdep then redis.call('ZADD', P .. 'waiting', NOW, id) end
    elseif run_at > NOW then
      status = 'scheduled'
      redis.call('ZADD', P .. 'delayed', run_at, id)
    else
      run_at = NOW
      pending_add(pend, prio, id, false, grp)
    end
    local f = { 'status', status, 'priority', prio, 'attempts', '0',
      'created', NOW_US_S,
      'run_at', run_at == NOW and NOW_S .. '000' or string.format('%d', run_at * 1000) }
    for k = fb, fb + 2 * nf - 1 do f[#f + 1] = ARGV[k] end
    if nd > 0 then f[#f + 1] = 'ndeps'; f[#f + 1] = tostring(nd) end
    redis.call('HSET', P .. 'job:' .. id, unpack(f))
    if fdep then
      -- a dependency failed or was cancelled already: as the policy says
      deps_fail(id, P .. 'job:' .. id, { 'waiting', dpol, nil,
        nil, nil, redis.call('HGET', P .. 'job:' .. id, 'callback'), uk }, fdep, fhow)
      status = dpol == 'cancel' and 'cancelled' or 'failed'
    end
    if status ~= 'waiting' then created = created + 1 end
    st[#st + 1] = ENQ_LETTER[status]
  end
end
pending_flush(pend)
flush()
stats_flush()
out[ENQ_REPLY_STATES] = table.concat(st)
if config_load().paused then
  out[ENQ_REPLY_LIVE] = 1
  return out
end
-- Wake idle workers: for due jobs, and for scheduled ones too, since an
-- idle worker sleeping until its next due time must learn of an earlier one.
if created > 0 then wake_markers(created) end
local live = redis.call('ZRANGEBYSCORE', P .. 'workers', NOW_S, '+inf', 'LIMIT', '0', '1')
out[ENQ_REPLY_LIVE] = #live > 0 and 1 or 0
return out
