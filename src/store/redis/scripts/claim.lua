-- claim: the most urgent, longest-waiting ticket across the given queues of one partition.
-- A claim id (chosen by the desk) makes the claim safe to retry: a retry whose first answer was
-- lost finds the hold it made, as long as that hold is still current.
-- KEYS: the queues. ARGV[4..]: agent id, lease (ms), claim id ('' for none).
local t = now_ms()
local claim_key = P .. 'claim:' .. ARGV[4] .. ':' .. ARGV[6]
if ARGV[6] ~= '' then
  local prior = redis.call('GET', claim_key)
  if prior then
    local id, token = string.match(prior, '^(.*) (%d+)$')
    local h = redis.call('HMGET', tkey(id), 'state', 'agent_id', 'lease_token', 'lease_expires_at')
    if (h[1] == 'RESERVED' or h[1] == 'IN_PROGRESS') and h[2] == ARGV[4] and h[3] == token
      and tonumber(h[4]) > t then
      return redis.call('HGETALL', tkey(id))
    end
  end
end
local best, best_score, best_queue
for _, queue in ipairs(KEYS) do
  local head = redis.call('ZRANGE', queue, 0, 0, 'WITHSCORES')
  if head[1] then
    local s = tonumber(head[2])
    if not best_score or s < best_score then
      best, best_score, best_queue = head[1], s, queue
    end
  end
end
if not best then
  return false
end
redis.call('ZREM', best_queue, best)
local token = int(redis.call('INCR', P .. 'fence'))
local expires = int(t + tonumber(ARGV[5]))
redis.call('HSET', tkey(best), 'state', 'RESERVED', 'agent_id', ARGV[4], 'lease_token', token,
  'lease_expires_at', expires, 'claimed_at', NOW)
redis.call('ZADD', P .. 'leases', expires, best)
-- The ticket as claimed, which is the answer, read once: what the feed shows is taken from it.
local ticket = redis.call('HGETALL', tkey(best))
local f = {}
for i = 1, #ticket, 2 do
  f[ticket[i]] = ticket[i + 1]
end
local team = f.team_id
-- The team's figures in one read and one write: the interval between claims (moving average,
-- which gives the expected wait of later callers) and the count of reserved tickets.
local stats = skey(team)
local s = redis.call('HMGET', stats, 'last_claim_at', 'claim_interval', 'RESERVED')
local figures = {'last_claim_at', NOW, 'RESERVED', int(tonumber(s[3] or 0) + 1)}
local last = tonumber(s[1] or '0')
if last > 0 then
  local gap = math.min(t - last, 3600000)
  local previous = tonumber(s[2] or gap)
  figures[#figures + 1] = 'claim_interval'
  figures[#figures + 1] = int(math.floor(previous * 0.8 + gap * 0.2))
end
redis.call('HSET', stats, unpack(figures))
if ARGV[6] ~= '' then
  redis.call('SET', claim_key, best .. ' ' .. token, 'PX', ARGV[5])
end
remember(best, 'claimed by ' .. ARGV[4] .. ' lease ' .. token)
local shown = {'RESERVED', f.urgency, ARGV[4], f.cooperator_id, f.issue_type, f.building_id,
  f.address, f.incident_calls, f.created_at, f.sla_due_at}
emit_with(team, 'claimed', best, shown)
return ticket
