-- sketch/settle.lua: the settle of sketch/take.lua's batch (not what
-- wakeq runs). KEYS[1] the prefix; ARGV: the token, then ID, result,
-- attempts a job (the worker has them from the take). The fencing check
-- is one ZMSCORE of the batch's TOKEN:ID members; a job still leased gets
-- one HSET (status, result, attempts, finish time); the done set, the
-- metric and the event are one command each for the batch.
local P, t = KEYS[1], ARGV[1]
local T = redis.call('TIME')
local now = T[1] .. string.format('%03d', math.floor(tonumber(T[2]) / 1000))
local m = {}
for i = 2, #ARGV, 3 do m[#m + 1] = t .. ':' .. ARGV[i] end
local sc = redis.call('ZMSCORE', P .. 'active', unpack(m))
redis.call('ZREM', P .. 'active', unpack(m))
local done, ev = {}, {}
for k = 1, #m do
  if sc[k] then
    local b = 3 * k - 1
    local id = ARGV[b]
    redis.call('HSET', P .. 'job:' .. id, 'status', 'done', 'result', ARGV[b + 1], 'attempts', ARGV[b + 2], 'finished', now)
    done[#done + 1] = now; done[#done + 1] = id
    ev[#ev + 1] = id
  end
end
if #done > 0 then
  redis.call('ZADD', P .. 'done', unpack(done))
  redis.call('HINCRBY', P .. 'stats', 'done', #ev)
  redis.call('PUBLISH', P .. 'events', 'done ' .. table.concat(ev, ' '))
end
return #ev
