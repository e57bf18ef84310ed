-- release: back to its queue at its original place, by the holder.
-- ARGV[4..]: ticket id, agent id, lease token.
local t = now_ms()
local id = ARGV[4]
local answer = hold_answer(id, ARGV[5], ARGV[6], 'release', t)
if answer then
  return answer
end
local h = redis.call('HMGET', tkey(id), 'state', 'team_id', 'urgency', 'enqueued_at')
redis.call('HSET', tkey(id), 'state', 'QUEUED', 'agent_id', '', 'lease_token', '0',
  'lease_expires_at', '')
redis.call('ZREM', P .. 'leases', id)
redis.call('ZADD', qkey(h[2]), score_text(h[3], h[4]), id)
count(h[2], h[1], '-1')
end_hold(id, ARGV[5], ARGV[6], 'release')
remember(id, 'released by ' .. ARGV[5])
emit(h[2], 'released', id)
return packed(redis.call('HGETALL', tkey(id)))
