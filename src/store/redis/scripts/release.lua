-- release: back to its queue at its original place, by the holder.
-- ARGV[4..]: ticket id, agent id, lease token.
local t = now_ms()
local id = ARGV[4]
local r, answer = held_row(id, ARGV[5], ARGV[6], 'release', t)
if answer then
  return answer
end
local state, team = r[ROW.state], r[ROW.team_id]
-- How the hold ended is recorded with the transition, in the same write.
redis.call('HSET', tkey(id), 'state', 'QUEUED', 'agent_id', '', 'lease_token', '0',
  'lease_expires_at', '', 'log', logged(r[ROW_FIELDS + 2], 'released by ' .. ARGV[5]),
  hold_end(ARGV[5], ARGV[6], 'release'))
r[ROW.state], r[ROW.agent_id], r[ROW.lease_token], r[ROW.lease_expires_at] = 'QUEUED', '', '0', ''
redis.call('ZREM', P .. 'leases', id)
redis.call('ZADD', qkey(team), score_text(r[ROW.urgency], r[ROW.enqueued_at]), id)
count(team, state, '-1')
emit_row(team, 'released', r)
return row(r)
