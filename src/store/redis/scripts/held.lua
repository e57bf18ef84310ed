-- held: the tickets of one partition an agent holds under a current lease. KEYS: the leases.
-- ARGV[4]: agent id.
local t = now_ms()
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. NOW, '+inf')) do
  if redis.call('HGET', tkey(id), 'agent_id') == ARGV[4] then
    out[#out + 1] = redis.call('HGETALL', tkey(id))
  end
end
return out
