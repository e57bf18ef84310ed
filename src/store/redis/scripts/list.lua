-- list: the first waiting tickets of a queue, in claim order. KEYS: the queue. ARGV[4]: how many.
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[4]) - 1)
local out = {}
for _, id in ipairs(ids) do
  out[#out + 1] = redis.call('HGETALL', tkey(id))
end
return out
