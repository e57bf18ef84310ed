-- create: a ticket for a call, idempotent by call id; a building-wide issue joins its open incident.
-- KEYS: call key, queue key, ticket key, incident key (the call key again when there is none).
-- ARGV[4..]: ticket id, call id, team, urgency rank, incident id, cut-off (ms, Redis clock), then
-- the ticket's packed fields as the caller joined them (SHOWN_FIELDS and KEPT_FIELDS in reply.rs):
-- its shown field before the creation time and after it, and its kept field whole. A value given
-- whole costs Redis less than its parts given one by one and joined here (each value a script is
-- given or makes is hashed over every byte).
-- Past the cut-off the caller has been told "not queued": nothing is created (a retry still finds
-- a ticket created before, which is true). Replies {duplicate, joined, position, ticket fields}
-- for a ticket that existed; for a new one, "<position> <claim interval> <creation time>" (one
-- value is the cheapest reply to read).
local t = now_ms()
local existing = redis.call('GET', KEYS[1])
if existing and redis.call('EXISTS', tkey(existing)) == 1 then
  return {1, 0, position(existing), redis.call('HGETALL', tkey(existing))}
end
if t > tonumber(ARGV[9]) then
  return redis.error_reply('CR_TOO_LATE ' .. t)
end
local incident = ARGV[8]
if incident ~= '' then
  local open = redis.call('GET', KEYS[4])
  if open then
    local state = redis.call('HGET', tkey(open), 'state')
    if state and state ~= 'COMPLETED' and state ~= 'CANCELLED' and state ~= 'MOVED' then
      -- Each caller counts on its own, so that a hang-up withdraws only that caller.
      local callers = ckey(open)
      if redis.call('EXISTS', callers) == 0 then
        redis.call('SADD', callers, (call_and_incident(open)))
      end
      redis.call('SADD', callers, ARGV[5])
      redis.call('HSET', tkey(open), 'incident_calls', redis.call('SCARD', callers))
      -- A joined call is remembered for retries for the retention, like every routed call.
      redis.call('SET', KEYS[1], open, 'PX', RETENTION)
      remember(open, 'incident call ' .. ARGV[5])
      emit(redis.call('HGET', tkey(open), 'team_id'), 'incident_call', open)
      return {0, 1, position(open), redis.call('HGETALL', tkey(open))}
    end
  end
end
local id = ARGV[4]
local team = ARGV[6]
-- The history's first line, "<created_at> created in <team>", is not written: readers make it from
-- the created_in field (a list is one more key per ticket, and most tickets change only a few times).
-- A field that changes and that a new ticket would hold empty or at its default (one caller, no
-- agent, lease token and attempts 0) is not written: readers take its absence for that value, and
-- a ticket costs Redis per field. The fields that never change are packed (SHOWN_FIELDS and
-- KEPT_FIELDS in reply.rs). Its holds are counted from 0 (see claim_from).
local shown = ARGV[10] .. NOW .. ARGV[11]
redis.call('HSET', KEYS[3], 'state', 'QUEUED', 'team_id', team, 'urgency', ARGV[7],
  'enqueued_at', NOW, 'holds', '0', 'shown', shown, 'kept', ARGV[12])
redis.call('ZADD', KEYS[2], score_text(ARGV[7], NOW), id)
-- The call is remembered for retries, and for its caller's hang-up, for the retention.
redis.call('SET', KEYS[1], id, 'PX', RETENTION)
if incident ~= '' then
  redis.call('SET', KEYS[4], id)
end
-- What was just written is not read back: the feed and the reply are built from the arguments
-- (the caller builds the ticket from its request and the creation time).
emit_text(team, 'created',
  'QUEUED', ARGV[7], '', '1', shown)
local at = position_in(team, id)
return int(at[1]) .. ' ' .. int(at[2]) .. ' ' .. NOW
