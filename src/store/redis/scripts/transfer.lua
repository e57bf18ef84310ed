-- transfer: to another team of the same partition, keeping its place in time and its history.
-- ARGV[4..]: ticket id, agent id, lease token, target team, urgency rank to raise to ('' = keep).
local t = now_ms()
local id = ARGV[4]
local r, answer = held_row(id, ARGV[5], ARGV[6], 'transfer', t)
if answer then
  return answer
end
local state, from, to = r[ROW.state], r[ROW.team_id], ARGV[7]
local urgency = r[ROW.urgency]
if ARGV[8] ~= '' and tonumber(ARGV[8]) < tonumber(urgency) then
  urgency = ARGV[8]
end
-- How the hold ended is recorded with the transition, in the same write.
redis.call('HSET', tkey(id), 'state', 'QUEUED', 'team_id', to, 'urgency', urgency, 'agent_id', '',
  'lease_token', '0', 'lease_expires_at', '',
  'log', logged(r[ROW_FIELDS + 2], 'transferred by ' .. ARGV[5] .. ' from ' .. from .. ' to '
    .. to),
  hold_end(ARGV[5], ARGV[6], 'transfer'))
r[ROW.state], r[ROW.team_id], r[ROW.urgency] = 'QUEUED', to, urgency
r[ROW.agent_id], r[ROW.lease_token], r[ROW.lease_expires_at] = '', '0', ''
redis.call('ZREM', P .. 'leases', id)
redis.call('ZADD', qkey(to), score_text(urgency, r[ROW.enqueued_at]), id)
count(from, state, '-1')
emit_row(from, 'transferred_out', r)
emit_row(to, 'transferred_in', r)
return row(r)
