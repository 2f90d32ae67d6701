-- purge_dead: deletes up to 1000 dead jobs. Returns how many.
-- keys (all under KEYS[1] = wakeq:{QUEUE}:): dead, job:ID.
local ids = redis.call('ZRANGE', P .. 'dead', 0, 999)
for i = 1, #ids do redis.call('DEL', P .. 'job:' .. ids[i]) end
if #ids > 0 then redis.call('ZREM', P .. 'dead', unpack(ids)) end
return #ids
