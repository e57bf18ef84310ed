-- complete: RESERVED | IN_PROGRESS -> COMPLETED by the holder; closes its incident.
-- ARGV[4..]: ticket id, agent id, lease token, resolution code.
local t = now_ms()
local id = ARGV[4]
local answer = hold_answer(id, ARGV[5], ARGV[6], 'complete', t)
if answer then
  return answer
end
local h = redis.call('HMGET', tkey(id), 'state', 'team_id', 'incident_id', 'call_id', 'urgency',
  'cooperator_id', 'issue_type', 'building_id', 'address', 'incident_calls', 'created_at',
  'sla_due_at')
-- How the hold ended is recorded with the transition, in the same write.
redis.call('HSET', tkey(id), 'state', 'COMPLETED', 'closed_at', NOW, 'resolution', ARGV[7],
  'lease_expires_at', '', hold_end(ARGV[5], ARGV[6], 'complete'))
redis.call('ZREM', P .. 'leases', id)
if h[3] and h[3] ~= '' and redis.call('GET', P .. 'inc:' .. h[3]) == id then
  redis.call('DEL', P .. 'inc:' .. h[3])
end
count(h[2], h[1], '-1')
count(h[2], 'COMPLETED', '1')
remember(id, 'completed by ' .. ARGV[5] .. ': ' .. ARGV[7])
local shown = {'COMPLETED', h[5], ARGV[5], h[6], h[7], h[8], h[9], h[10], h[11], h[12]}
emit_with(h[2], 'completed', id, shown)
expire_closed(id, h[4])
return redis.call('HGETALL', tkey(id))
