-- reap: expired leases go back to their queue at their original place with attempts + 1; at the
-- attempt limit, to the escalation team's queue. Also lists moves left half-done for 5 s or more.
-- ARGV[4..]: attempt limit, how many leases at most.
local t = now_ms()
local limit = tonumber(ARGV[4])
local due = redis.call('ZRANGEBYSCORE', P .. 'leases', '-inf', NOW, 'LIMIT', 0, ARGV[5])
local expired, escalated = 0, 0
for _, id in ipairs(due) do
  redis.call('ZREM', P .. 'leases', id)
  local h = redis.call('HMGET', tkey(id), 'state', 'team_id', 'attempts', 'urgency', 'enqueued_at',
    'kept', 'agent_id', 'log', 'escalation_team')
  if h[1] == 'RESERVED' or h[1] == 'IN_PROGRESS' then
    -- The escalation team, from the kept field (or its own, in a ticket written before it).
    if h[6] then
      h[6] = select(3, kept_ids(h[6]))
    else
      h[6] = h[9]
    end
    local attempts = tonumber(h[3] or 0) + 1
    local target = h[2]
    local log = logged(h[8], 'lease of ' .. h[7] .. ' expired, attempt ' .. int(attempts))
    if attempts >= limit and h[6] and h[6] ~= '' and h[6] ~= h[2] then
      target = h[6]
      escalated = escalated + 1
      log = logged(log, 'escalated to ' .. target)
      redis.call('HSET', tkey(id), 'escalated', '1', 'team_id', target)
    end
    redis.call('HSET', tkey(id), 'state', 'QUEUED', 'agent_id', '', 'lease_token', '0',
      'lease_expires_at', '', 'attempts', int(attempts), 'log', log)
    redis.call('ZADD', qkey(target), score_text(h[4], h[5]), id)
    count(h[2], h[1], '-1')
    emit(h[2], 'lease_expired', id)
    if target ~= h[2] then
      emit(target, 'escalated', id)
    end
    expired = expired + 1
  end
end
local stuck = redis.call('ZRANGEBYSCORE', P .. 'outbox', '-inf', int(t - 5000), 'LIMIT', 0, 100)
return {expired, escalated, stuck}
