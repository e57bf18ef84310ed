-- complete: RESERVED | IN_PROGRESS -> COMPLETED by the holder; closes its incident.
-- ARGV[4..]: ticket id, agent id, lease token, resolution code.
local t = now_ms()
local id = ARGV[4]
local answer = hold_answer(id, ARGV[5], ARGV[6], 'complete', t)
if answer then
  return answer
end
local h = redis.call('HMGET', tkey(id), 'state', 'team_id', 'incident_id')
redis.call('HSET', tkey(id), 'state', 'COMPLETED', 'closed_at', t, 'resolution', ARGV[7],
  'lease_expires_at', '')
redis.call('ZREM', P .. 'leases', id)
if h[3] and h[3] ~= '' and redis.call('GET', P .. 'inc:' .. h[3]) == id then
  redis.call('DEL', P .. 'inc:' .. h[3])
end
count(h[2], h[1], -1)
count(h[2], 'COMPLETED', 1)
end_hold(id, ARGV[5], ARGV[6], 'complete')
remember(id, t, 'completed by ' .. ARGV[5] .. ': ' .. ARGV[7])
emit(h[2], 'completed', id, t)
expire_closed(id)
return redis.call('HGETALL', tkey(id))
