-- cancel: a caller hung up before pickup. Each caller of a building-wide incident counts on its
-- own: a hang-up withdraws that caller, and the ticket is cancelled when no caller is left. The
-- call must be one of the ticket's (its call key names the ticket); withdrawing a caller twice, or
-- cancelling twice, returns the ticket as it is.
-- ARGV[4..]: ticket id, call id ('' for the ticket's own call).
local t = now_ms()
local id = ARGV[4]
local h = redis.call('HMGET', tkey(id), 'state', 'team_id', 'incident_id', 'call_id')
if not h[1] then
  return redis.error_reply('CR_NOT_FOUND ' .. id)
end
local call = ARGV[5]
if call == '' then
  call = h[4]
end
if redis.call('GET', P .. 'call:' .. call) ~= id then
  return redis.error_reply('CR_NOT_FOUND ' .. id)
end
if h[1] == 'CANCELLED' then
  return packed(redis.call('HGETALL', tkey(id)))
end
if h[1] ~= 'QUEUED' then
  return redis.error_reply('CR_WRONG_STATE ' .. h[1] .. ' cancel')
end
local callers = ckey(id)
if redis.call('EXISTS', callers) == 1 then
  if redis.call('SREM', callers, call) == 0 then
    return packed(redis.call('HGETALL', tkey(id)))
  end
  local left = redis.call('SCARD', callers)
  redis.call('HSET', tkey(id), 'incident_calls', left)
  if left > 0 then
    remember(id, 'caller ' .. call .. ' hung up, ' .. left .. ' still waiting')
    emit(h[2], 'caller_left', id)
    return packed(redis.call('HGETALL', tkey(id)))
  end
end
redis.call('ZREM', qkey(h[2]), id)
redis.call('HSET', tkey(id), 'state', 'CANCELLED', 'closed_at', NOW)
if h[3] and h[3] ~= '' and redis.call('GET', P .. 'inc:' .. h[3]) == id then
  redis.call('DEL', P .. 'inc:' .. h[3])
end
count(h[2], 'CANCELLED', '1')
remember(id, 'cancelled: caller ' .. call .. ' hung up')
emit(h[2], 'cancelled', id)
expire_closed(id, h[4], h[3] or '')
return packed(redis.call('HGETALL', tkey(id)))
