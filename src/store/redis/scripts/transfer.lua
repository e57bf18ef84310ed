-- transfer: to another team of the same partition, keeping its place in time and its history.
-- ARGV[4..]: ticket id, agent id, lease token, target team, urgency rank to raise to ('' = keep).
local t = now_ms()
local id = ARGV[4]
local answer = hold_answer(id, ARGV[5], ARGV[6], 'transfer', t)
if answer then
  return answer
end
local h = redis.call('HMGET', tkey(id), 'state', 'team_id', 'urgency', 'enqueued_at')
local to = ARGV[7]
local urgency = h[3]
if ARGV[8] ~= '' and tonumber(ARGV[8]) < tonumber(urgency) then
  urgency = ARGV[8]
end
redis.call('HSET', tkey(id), 'state', 'QUEUED', 'team_id', to, 'urgency', urgency, 'agent_id', '',
  'lease_token', '0', 'lease_expires_at', '')
redis.call('ZREM', P .. 'leases', id)
redis.call('ZADD', qkey(to), score_text(urgency, h[4]), id)
count(h[2], h[1], '-1')
end_hold(id, ARGV[5], ARGV[6], 'transfer')
remember(id, 'transferred by ' .. ARGV[5] .. ' from ' .. h[2] .. ' to ' .. to)
emit(h[2], 'transferred_out', id)
emit(to, 'transferred_in', id)
return packed(redis.call('HGETALL', tkey(id)))
