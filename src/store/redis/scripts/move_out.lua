-- move_out: first step of a transfer to another partition. The holder hands the ticket over:
-- it leaves its lease and waits in the outbox, claimable by no one, until move_in has created it
-- in the target partition and move_done has closed it here (the reaper finishes interrupted moves).
-- ARGV[4..]: ticket id, agent id, lease token, target partition, target team, urgency rank ('' = keep).
local t = now_ms()
local id = ARGV[4]
local refused, done = check_hold(id, ARGV[5], ARGV[6], 'transfer', t)
if done then
  return {redis.call('HGETALL', tkey(id)), redis.call('LRANGE', hkey(id), 0, -1)}
end
if refused then
  return refused
end
local h = redis.call('HMGET', tkey(id), 'state', 'team_id')
redis.call('HSET', tkey(id), 'state', 'MOVING', 'move_partition', ARGV[7], 'move_team', ARGV[8],
  'move_urgency', ARGV[9], 'lease_expires_at', '')
redis.call('ZREM', P .. 'leases', id)
redis.call('ZADD', P .. 'outbox', NOW, id)
count(h[2], h[1], '-1')
end_hold(id, ARGV[5], ARGV[6], 'transfer')
remember(id, 'transfer by ' .. ARGV[5] .. ' to ' .. ARGV[7] .. '/' .. ARGV[8])
return {redis.call('HGETALL', tkey(id)), redis.call('LRANGE', hkey(id), 0, -1)}
