-- move_in: second step of a transfer to another partition, in the target partition; idempotent by
-- the source ticket id.
-- KEYS: moved-from key, new ticket key. ARGV[4..]: new ticket id, source ticket id, its history
-- (written as a log, see logged), then field/value pairs of the new ticket.
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
fields[#fields + 1] = 'log'
fields[#fields + 1] = logged(ARGV[6], 'moved in from ' .. ARGV[5])
redis.call('HSET', KEYS[2], unpack(fields))
local h = redis.call('HMGET', KEYS[2], 'team_id', 'urgency', 'enqueued_at')
redis.call('ZADD', qkey(h[1]), score_text(h[2], h[3]), id)
-- Retries of this step come within seconds; the marker outlives them by the retention.
redis.call('SET', KEYS[1], id, 'PX', RETENTION)
redis.call('SET', P .. 'call:' .. call_and_incident(id), id, 'NX', 'PX', RETENTION)
emit(h[1], 'transferred_in', id)
return redis.call('HGETALL', KEYS[2])
