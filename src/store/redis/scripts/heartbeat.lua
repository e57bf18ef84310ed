-- heartbeat: an agent's desk reports its presence. Agents not seen for a week are forgotten.
-- KEYS: seen (sorted set), status (hash). ARGV[4..]: agent id, status JSON.
local t = now_ms()
redis.call('ZADD', KEYS[1], NOW, ARGV[4])
redis.call('HSET', KEYS[2], ARGV[4], ARGV[5])
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', int(t - 7 * 24 * 3600 * 1000))
for _, agent in ipairs(gone) do
  redis.call('ZREM', KEYS[1], agent)
  redis.call('HDEL', KEYS[2], agent)
end
return t
