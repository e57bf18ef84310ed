-- move_done: last step of a transfer to another partition: the source ticket becomes a MOVED stub
-- naming the new ticket. ARGV[4..]: source ticket id, new ticket id.
local t = now_ms()
local id = ARGV[4]
local h = redis.call('HMGET', tkey(id), 'state', 'team_id')
if h[1] ~= 'MOVING' then
  return redis.call('HGETALL', tkey(id))
end
redis.call('HSET', tkey(id), 'state', 'MOVED', 'moved_to', ARGV[5], 'closed_at', NOW,
  'agent_id', '', 'lease_token', '0')
redis.call('ZREM', P .. 'outbox', id)
local call, incident, older = call_and_incident(id)
if incident ~= '' and redis.call('GET', P .. 'inc:' .. incident) == id then
  redis.call('DEL', P .. 'inc:' .. incident)
end
remember(id, 'moved to ' .. ARGV[5])
emit(h[2], 'transferred_out', id)
expire_closed(id, incident, older and call)
return redis.call('HGETALL', tkey(id))
