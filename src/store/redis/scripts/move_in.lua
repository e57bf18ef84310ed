-- move_in: second step of a transfer to another partition, in the target partition; idempotent by
-- the source ticket id.
-- KEYS: moved-from key, new ticket key. ARGV[4..]: new ticket id, source ticket id, history lines
-- (newline-separated), then field/value pairs of the new ticket.
local t = now_ms()
local existing = redis.call('GET', KEYS[1])
if existing then
  return redis.call('HGETALL', tkey(existing))
end
local id = ARGV[4]
local fields = {}
for i = 7, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call('HSET', KEYS[2], unpack(fields))
for line in string.gmatch(ARGV[6], '[^\n]+') do
  redis.call('RPUSH', hkey(id), line)
end
local h = redis.call('HMGET', KEYS[2], 'team_id', 'urgency', 'enqueued_at', 'call_id')
redis.call('ZADD', qkey(h[1]), score_text(h[2], h[3]), id)
-- Retries of this step come within seconds; the marker outlives them by the retention.
redis.call('SET', KEYS[1], id, 'PX', RETENTION)
redis.call('SET', P .. 'call:' .. h[4], id, 'NX')
remember(id, 'moved in from ' .. ARGV[5])
emit(h[1], 'transferred_in', id)
return redis.call('HGETALL', KEYS[2])
