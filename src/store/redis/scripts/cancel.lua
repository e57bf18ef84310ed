-- cancel: QUEUED -> CANCELLED (the caller hung up before pickup); cancelling twice returns it as is.
-- ARGV[4]: ticket id.
local t = now_ms()
local id = ARGV[4]
local h = redis.call('HMGET', tkey(id), 'state', 'team_id', 'incident_id')
if not h[1] then
  return redis.error_reply('CR_NOT_FOUND ' .. id)
end
if h[1] == 'CANCELLED' then
  return redis.call('HGETALL', tkey(id))
end
if h[1] ~= 'QUEUED' then
  return redis.error_reply('CR_WRONG_STATE ' .. h[1] .. ' cancel')
end
redis.call('ZREM', qkey(h[2]), id)
redis.call('HSET', tkey(id), 'state', 'CANCELLED', 'closed_at', t)
if h[3] and h[3] ~= '' and redis.call('GET', P .. 'inc:' .. h[3]) == id then
  redis.call('DEL', P .. 'inc:' .. h[3])
end
count(h[2], 'QUEUED', -1)
count(h[2], 'CANCELLED', 1)
remember(id, t, 'cancelled')
emit(h[2], 'cancelled', id, t)
expire_closed(id)
return redis.call('HGETALL', tkey(id))
