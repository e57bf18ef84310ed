-- accept: RESERVED -> IN_PROGRESS by the holder, renewing the lease; accepting twice renews again.
-- ARGV[4..]: ticket id, agent id, lease token, lease (ms).
local t = now_ms()
local id = ARGV[4]
local r, answer = held_row(id, ARGV[5], ARGV[6], 'accept', t)
if answer then
  return answer
end
local state, team = r[ROW.state], r[ROW.team_id]
local expires = int(t + tonumber(ARGV[7]))
r[ROW.state], r[ROW.lease_expires_at] = 'IN_PROGRESS', expires
redis.call('ZADD', P .. 'leases', expires, id)
if state == 'RESERVED' then
  redis.call('HSET', tkey(id), 'state', 'IN_PROGRESS', 'lease_expires_at', expires,
    'log', logged(r[ROW_FIELDS + 2], 'accepted by ' .. ARGV[5]))
  count_move(team, 'RESERVED', 'IN_PROGRESS')
  emit_row(team, 'accepted', r)
else
  redis.call('HSET', tkey(id), 'lease_expires_at', expires)
end
return row(r)
