-- accept: RESERVED -> IN_PROGRESS by the holder, renewing the lease; accepting twice renews again.
-- ARGV[4..]: ticket id, agent id, lease token, lease (ms).
local t = now_ms()
local id = ARGV[4]
local answer = hold_answer(id, ARGV[5], ARGV[6], 'accept', t)
if answer then
  return answer
end
local h = redis.call('HMGET', tkey(id), 'state', 'team_id')
local expires = int(t + tonumber(ARGV[7]))
redis.call('HSET', tkey(id), 'state', 'IN_PROGRESS', 'lease_expires_at', expires)
redis.call('ZADD', P .. 'leases', expires, id)
if h[1] == 'RESERVED' then
  count(h[2], 'RESERVED', '-1')
  count(h[2], 'IN_PROGRESS', '1')
  remember(id, 'accepted by ' .. ARGV[5])
  emit(h[2], 'accepted', id)
end
return packed(redis.call('HGETALL', tkey(id)))
