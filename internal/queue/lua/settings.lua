-- settings: ARGV n, then n pairs of config field and value ('' removes
-- the field). Sets the queue's controls (paused is left alone: pause.lua).
-- Returns 1.
-- keys (all under KEYS[1] = wakeq:{QUEUE}:): config.
local set, del = {}, {}
for i = 0, tonumber(ARGV[1]) - 1 do
  local f, v = ARGV[2 + 2 * i], ARGV[3 + 2 * i]
  if v == '' then
    del[#del + 1] = f
  else
    set[#set + 1] = f
    set[#set + 1] = v
  end
end
if #set > 0 then redis.call('HSET', P .. 'config', unpack(set)) end
if #del > 0 then redis.call('HDEL', P .. 'config', unpack(del)) end
return 1
