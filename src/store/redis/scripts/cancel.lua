-- cancel: a caller hung up before pickup. Each caller of a building-wide incident counts on its
-- own: a hang-up withdraws that caller, and the ticket is cancelled when no caller is left. The
-- call must be one of the ticket's (its call key names the ticket); withdrawing a caller twice, or
-- cancelling twice, returns the ticket as it is.
-- ARGV[4..]: ticket id, call id ('' for the ticket's own call).
local t = now_ms()
local id = ARGV[4]
-- The ticket, its log after its fields.
local r = read_row(id, 'log')
if not r[ROW.state] then
  return redis.error_reply('CR_NOT_FOUND ' .. id)
end
local state, team = r[ROW.state], r[ROW.team_id]
local own_call, incident = kept_ids(r[ROW.kept])
local call = ARGV[5]
if call == '' then
  call = own_call
end
if redis.call('GET', P .. 'call:' .. call) ~= id then
  return redis.error_reply('CR_NOT_FOUND ' .. id)
end
if state == 'CANCELLED' then
  return row(r)
end
if state ~= 'QUEUED' then
  return redis.error_reply('CR_WRONG_STATE ' .. state .. ' cancel')
end
local callers = ckey(id)
if redis.call('EXISTS', callers) == 1 then
  if redis.call('SREM', callers, call) == 0 then
    return row(r)
  end
  local left = int(redis.call('SCARD', callers))
  r[ROW.incident_calls] = left
  if left ~= '0' then
    redis.call('HSET', tkey(id), 'incident_calls', left, 'log',
      logged(r[ROW_FIELDS + 1], 'caller ' .. call .. ' hung up, ' .. left .. ' still waiting'))
    emit_row(team, 'caller_left', r)
    return row(r)
  end
  redis.call('HSET', tkey(id), 'incident_calls', left)
end
redis.call('ZREM', qkey(team), id)
redis.call('HSET', tkey(id), 'state', 'CANCELLED', 'closed_at', NOW,
  'log', logged(r[ROW_FIELDS + 1], 'cancelled: caller ' .. call .. ' hung up'))
r[ROW.state], r[ROW.closed_at] = 'CANCELLED', NOW
if incident ~= '' and redis.call('GET', P .. 'inc:' .. incident) == id then
  redis.call('DEL', P .. 'inc:' .. incident)
end
count(team, 'CANCELLED', '1')
emit_row(team, 'cancelled', r)
expire_closed(id, incident, r.older and own_call)
return row(r)
