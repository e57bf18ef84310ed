-- complete: RESERVED | IN_PROGRESS -> COMPLETED by the holder; closes its incident.
-- ARGV[4..]: ticket id, agent id, lease token, resolution code.
local t = now_ms()
local id = ARGV[4]
-- What the transition needs and the hold (as hold_refusal takes it), in one read.
local h = redis.call('HMGET', tkey(id), 'team_id', 'incident_id', 'call_id', 'urgency',
  'cooperator_id', 'issue_type', 'building_id', 'address', 'incident_calls', 'created_at',
  'sla_due_at', 'state', 'agent_id', 'lease_token', 'lease_expires_at', 'ended:' .. ARGV[6])
local hold = {h[12], h[13], h[14], h[15], h[16]}
local refused, done = hold_refusal(hold, id, ARGV[5], ARGV[6], 'complete', t)
if done then
  return redis.call('HGETALL', tkey(id))
end
if refused then
  return refused
end
local state, team, incident = h[12], h[1], h[2] or ''
-- How the hold ended is recorded with the transition, in the same write.
redis.call('HSET', tkey(id), 'state', 'COMPLETED', 'closed_at', NOW, 'resolution', ARGV[7],
  'lease_expires_at', '', hold_end(ARGV[5], ARGV[6], 'complete'))
redis.call('ZREM', P .. 'leases', id)
if incident ~= '' and redis.call('GET', P .. 'inc:' .. incident) == id then
  redis.call('DEL', P .. 'inc:' .. incident)
end
count(team, state, '-1')
count(team, 'COMPLETED', '1')
remember(id, 'completed by ' .. ARGV[5] .. ': ' .. ARGV[7])
local shown = {'COMPLETED', h[4], ARGV[5], h[5], h[6], h[7], h[8], h[9], h[10], h[11]}
emit_with(team, 'completed', id, shown)
expire_closed(id, h[3], incident)
return redis.call('HGETALL', tkey(id))
