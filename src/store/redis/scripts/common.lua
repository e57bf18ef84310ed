-- Shared prelude of every callrouter script: each script is loaded with the parts it uses (the
-- locals, and the functions it calls directly or through each other; see prelude.rs). A function
-- of one line and one parameter that returns an expression is written out where it is called.
-- ARGV[1] is the partition's key prefix, "<namespace>:{<partition>}:", so every key a script builds
-- carries the same hash tag and the script touches one Redis Cluster slot.
-- ARGV[2] is the length of team feeds, ARGV[3] the retention of closed tickets in milliseconds.
-- A ticket's hash holds each field that changes as a field of its own, and the fields that never
-- change packed, joined by the byte 255, into two: 'shown' (what a desk shows, which feed entries
-- carry as it is) and 'kept' (SHOWN_FIELDS and KEPT_FIELDS in reply.rs). A ticket costs Redis per
-- field it holds and per field read. A ticket written before that holds each field as its own.
-- A ticket read as a row (read_row) is a list of its fields in a fixed order (ROW_READ in
-- reply.rs). The scripts name a field's place in a row ROW.<field>, a row's length ROW_FIELDS and
-- its fields ROW_NAMES, and the fields a packed field holds SHOWN_NAMES and KEPT_NAMES: the
-- script's text is given their values (numbers, the quoted names) when it is assembled
-- (prelude.rs), which costs a call nothing, where a Lua local would cost each closure that reads
-- it a capture at every call.
-- Numbers a script hands to Redis are given as text (FEED, RETENTION, '1'): a Lua number (a
-- double) handed to Redis is formatted by sprintf at every use, which costs about as much as a
-- command.
local P = ARGV[1]
local FEED = ARGV[2]
local RETENTION = ARGV[3]

-- The time of the script's now_ms() as text, which is what gets written.
local NOW

local function now_ms()
  local time = redis.call('TIME')
  local us = time[2]
  NOW = time[1] .. string.sub(string.rep('0', 6 - #us) .. us, 1, 3)
  return tonumber(NOW)
end

-- A whole number as text, without the floating-point formatting Lua's own conversion uses.
local function int(n) return string.format('%d', n) end

-- A queue's score, urgency rank * 10^13 + enqueued time (ms), as text: the urgency's digit before
-- the 13 digits of a time in ms (any time from 2001 to 2286), else computed.
local function score_text(urgency, enqueued_at)
  if #urgency == 1 and #enqueued_at == 13 then
    return urgency .. enqueued_at
  end
  return int(tonumber(urgency) * 1e13 + tonumber(enqueued_at))
end

local function tkey(id) return P .. 't:' .. id end
local function hkey(id) return P .. 'h:' .. id end
local function qkey(team) return P .. 'q:' .. team end
local function ekey(team) return P .. 'ev:' .. team end
local function skey(team) return P .. 's:' .. team end
-- The callers of a building-wide incident's ticket (kept once a second caller joins).
local function ckey(id) return P .. 'callers:' .. id end

-- Fields of a ticket written before tickets packed the fields that never change, read one by one
-- and joined as a packed field holds them (an absent one empty).
local function unpacked(id, ...)
  local h = redis.call('HMGET', tkey(id), ...)
  for i = 1, #h do
    h[i] = h[i] or ''
  end
  return table.concat(h, '\255')
end

-- A ticket as a row: the fields of a ticket in the order the server reads them (ROW_READ in
-- reply.rs), false for a field the ticket does not hold (every one when there is no ticket), then
-- the fields asked for besides; the packed fields as a later ticket holds them whatever its age
-- (r.older is true for a ticket of older servers).
-- One read by name gives a script what it needs and its answer: fewer values than HGETALL (no
-- field names), each of which costs Redis to hand to Lua.
local function read_row(id, ...)
  local r = redis.call('HMGET', tkey(id), ROW_NAMES, ...)
  if not r[ROW.shown] and r[ROW.state] then
    r[ROW.shown], r[ROW.kept] = unpacked(id, SHOWN_NAMES), unpacked(id, KEPT_NAMES)
    r.older = true
  end
  return r
end

-- The call id, the incident id ('' for none) and the escalation team of a ticket's kept field;
-- each '' from a field not as written (fewer values), so that a transition never stops partway
-- through its writes on it: Redis keeps what a script wrote before it failed.
local function kept_ids(kept)
  local call, incident, escalation =
    string.match(kept, '^([^\255]*)\255([^\255]*)\255([^\255]*)')
  if not call then
    return '', '', ''
  end
  return call, incident, escalation
end

-- A ticket's call id and incident id ('' for none), whatever its age, and whether older servers
-- wrote it.
local function call_and_incident(id)
  local h = redis.call('HMGET', tkey(id), 'kept', 'call_id', 'incident_id')
  if h[1] then
    local call, incident = kept_ids(h[1])
    return call, incident, false
  end
  return h[2], h[3] or '', true
end

-- A row's ticket fields as one reply, joined by the byte 255 (which no UTF-8 text holds; every
-- value is UTF-8 text), a field the ticket does not hold empty (as the server reads an absent
-- one); the packed fields' values follow as they are. One value costs Redis less to send, and the
-- server less to read, than a value each.
-- ROW_TEXT is that concatenation of r's fields written out, (r[1] or '') .. '\255' .. (r[2] or
-- '') and so on (prelude.rs): one operation, where a loop and table.concat cost Lua more.
local function row(r) return ROW_TEXT end

-- Counts a team's tickets by state, except QUEUED: that count is the size of the team's queue.
local function count(team, state, delta)
  redis.call('HINCRBY', skey(team), state, delta)
end

-- Counts a ticket's move from one counted state to another as one count of the move, in the
-- field 'FROM>TO', which readers take from the first state's count and add to the second's (one
-- command where a count of each state would take two).
local function count_move(team, from, to)
  redis.call('HINCRBY', skey(team), from .. '>' .. to, '1')
end

-- A ticket's log (its history after the creation line) with line added, at NOW: the value of its
-- 'log' field, to write with the transition's own fields. log is the field as read (false when the
-- ticket has none yet). Each line is written '<its length in bytes>:<line>', so that a line may
-- hold any text (log_lines in reply.rs reads them). One field costs Redis less than a list (one
-- more key per ticket, and a command per line).
local function logged(log, line)
  return (log or '') .. (#NOW + 1 + #line) .. ':' .. NOW .. ' ' .. line
end

-- Adds a line to a ticket's log, for a transition that does not read the log with the ticket.
local function remember(id, line)
  redis.call('HSET', tkey(id), 'log', logged(redis.call('HGET', tkey(id), 'log'), line))
end

-- Appends a transition to a team's feed: entry, one field, the kind, team and time, then what a
-- desk shows of the ticket after it (state, urgency, agent, incident calls, then its shown field
-- as it is; an absent one empty, or its default), joined by the byte 255 (ENTRY_FIELDS in
-- reply.rs; a stream entry, and each argument of a command Redis runs and writes to its
-- append-only file, costs per field). An entry is one concatenation, where a table of its values
-- and table.concat cost Lua more.
-- The feed is cut to about FEED entries when a ticket or a caller enters it, or a ticket is
-- claimed: the other transitions of a ticket each follow one of those, so a feed outgrows its
-- length by at most a few entries per ticket in hand, and the cut (a check Redis makes at every
-- entry it is asked for) is spared the most frequent of them.
local function emit_text(team, kind, state, urgency, agent, calls, shown)
  local entry = kind .. '\255' .. team .. '\255' .. NOW .. '\255' .. state .. '\255' .. urgency
    .. '\255' .. (agent or '') .. '\255' .. (calls or '1') .. '\255' .. shown
  if kind == 'created' or kind == 'claimed' or kind == 'transferred_in' or kind == 'escalated'
    or kind == 'incident_call' then
    redis.call('XADD', ekey(team), 'MAXLEN', '~', FEED, '*', 'entry', entry)
  else
    redis.call('XADD', ekey(team), '*', 'entry', entry)
  end
end

-- emit_text for a ticket as a row (read_row), as it is after the transition.
local function emit_row(team, kind, r)
  emit_text(team, kind, r[ROW.state], r[ROW.urgency], r[ROW.agent_id], r[ROW.incident_calls],
    r[ROW.shown])
end

-- emit_text, reading what the feed shows from the ticket.
local function emit(team, kind, id)
  local h = redis.call('HMGET', tkey(id), 'state', 'urgency', 'agent_id', 'incident_calls',
    'shown')
  emit_text(team, kind, h[1], h[2], h[3], h[4], h[5] or unpacked(id, SHOWN_NAMES))
end

-- Closed tickets, with their history, and the callers of a building-wide incident's ticket
-- (`incident`, its id, '' for none) are purged after the retention. A call's key expires the
-- retention after the call was routed (create and move_in set it so): a retry, or the caller's
-- hang-up, comes within it. older_call is the call id of a ticket older servers wrote (nil for
-- a later one): its call key has no expiry, and it may keep history lines in a list, so both get
-- the retention here.
local function expire_closed(id, incident, older_call)
  redis.call('PEXPIRE', tkey(id), RETENTION)
  if incident ~= '' then
    redis.call('PEXPIRE', ckey(id), RETENTION)
  end
  if older_call then
    -- Asked first: Redis answers EXISTS for a key it does not hold in a third of the time it
    -- takes to refuse a PEXPIRE.
    if redis.call('EXISTS', hkey(id)) == 1 then
      redis.call('PEXPIRE', hkey(id), RETENTION)
    end
    if redis.call('GET', P .. 'call:' .. older_call) == id then
      redis.call('PEXPIRE', P .. 'call:' .. older_call, RETENTION)
    end
  end
end

-- Refuses anyone but the current holder, under an unexpired lease (fencing), from the ticket's
-- state, agent_id, lease_token, lease_expires_at and 'ended:<token>' fields. A holder repeating an
-- action that already ended its hold (its answer was lost) is not refused: the second value says
-- the action is done, and the script answers with the ticket as it is.
local function hold_refusal(state, holder, held_token, expires, ended, id, agent, token, action, t)
  if not state then
    return redis.error_reply('CR_NOT_FOUND ' .. id), false
  end
  if ended == agent .. ' ' .. action then
    return nil, true
  end
  if state ~= 'RESERVED' and state ~= 'IN_PROGRESS' then
    return redis.error_reply('CR_WRONG_STATE ' .. state .. ' ' .. action), false
  end
  if holder ~= agent or held_token ~= token or tonumber(expires) <= t then
    return redis.error_reply('CR_NOT_HOLDER ' .. id), false
  end
  return nil, false
end

-- hold_refusal, reading the hold from the ticket.
local function check_hold(id, agent, token, action, t)
  local h = redis.call('HMGET', tkey(id), 'state', 'agent_id', 'lease_token', 'lease_expires_at',
    'ended:' .. token)
  return hold_refusal(h[1], h[2], h[3], h[4], h[5], id, agent, token, action, t)
end

-- A ticket, for an action of the holder of its hold under token: the ticket as a row (read_row),
-- with how that hold ended, then its log, after its fields; and what to answer when the action may
-- not go on — the refusal, or the ticket (row) when the holder's retry finds the action done —
-- else nil.
local function held_row(id, agent, token, action, t)
  local r = read_row(id, 'ended:' .. token, 'log')
  local refused, done = hold_refusal(r[ROW.state], r[ROW.agent_id], r[ROW.lease_token],
    r[ROW.lease_expires_at], r[ROW_FIELDS + 1], id, agent, token, action, t)
  if done then
    return r, row(r)
  end
  return r, refused
end

-- The ticket field, and its value, that record how a hold ended, so that its holder's retry of
-- the same action is answered as done (to write with the transition's own fields, last: a call
-- gives all its values only as the last argument).
local function hold_end(agent, token, action)
  return 'ended:' .. token, agent .. ' ' .. action
end

-- Records how a hold ended.
local function end_hold(id, agent, token, action)
  redis.call('HSET', tkey(id), hold_end(agent, token, action))
end

-- Position of a ticket queued in a team's queue (1 = next) and the team's recent interval between
-- claims, in ms (-1 when none yet): the last number of its claims field (see claim_from), or the
-- field 'claim_interval' where older servers kept it.
local function position_in(team, id)
  local rank = redis.call('ZRANK', qkey(team), id)
  if not rank then
    return {0, 0}
  end
  local s = redis.call('HMGET', skey(team), 'QUEUED>RESERVED', 'claim_interval')
  local interval = tonumber(s[1] and string.match(s[1], ' (%-?%d+)$') or s[2]) or -1
  return {rank + 1, math.floor(interval)}
end

-- position_in for any ticket: {0, 0} unless it is queued.
local function position(id)
  local h = redis.call('HMGET', tkey(id), 'state', 'team_id')
  if h[1] ~= 'QUEUED' then
    return {0, 0}
  end
  return position_in(h[2], id)
end

-- Claims, for agent, the most urgent, longest-waiting ticket across queues (keys of one
-- partition), under a lease of lease_ms from t. A claim id (chosen by the desk, '' for none) makes
-- the claim safe to retry: a retry whose first answer was lost finds the hold it made, as long as
-- that hold is still current. The ticket as claimed (a row), or false when the queues are empty.
local function claim_from(queues, agent, lease_ms, claim_id, t)
  local claim_key = P .. 'claim:' .. agent .. ':' .. claim_id
  if claim_id ~= '' then
    local prior = redis.call('GET', claim_key)
    if prior then
      local id, token = string.match(prior, '^(.*) (%d+)$')
      local r = read_row(id)
      if (r[ROW.state] == 'RESERVED' or r[ROW.state] == 'IN_PROGRESS') and r[ROW.agent_id] == agent
        and r[ROW.lease_token] == token and tonumber(r[ROW.lease_expires_at]) > t then
        return row(r)
      end
    end
  end
  local best
  if #queues == 1 then
    -- One queue: its head, taken in the command that reads it.
    best = redis.call('ZPOPMIN', queues[1])[1]
  else
    local best_score, best_queue
    for _, queue in ipairs(queues) do
      local head = redis.call('ZRANGE', queue, '0', '0', 'WITHSCORES')
      if head[1] then
        local s = tonumber(head[2])
        if not best_score or s < best_score then
          best, best_score, best_queue = head[1], s, queue
        end
      end
    end
    if best then
      redis.call('ZREM', best_queue, best)
    end
  end
  if not best then
    return false
  end
  local expires = int(t + tonumber(lease_ms))
  -- The ticket, read once: the fields a claim leaves as they were (a queued ticket holds no hold
  -- and no closing fields), then its log and its count of holds. The answer and what the feed
  -- shows are the row as claimed.
  local h = redis.call('HMGET', tkey(best), 'team_id', 'urgency', 'incident_calls', 'attempts',
    'enqueued_at', 'escalated', 'transferred_from', 'shown', 'kept', 'log', 'holds')
  -- The hold's fencing token: the ticket's holds counted, which tells each of its holds from the
  -- others (its ended:<token> fields, a stale holder's token). A ticket of older servers, whose
  -- holds took their tokens from the partition's counter, takes its first here from that counter
  -- too, above every token it had.
  local token = h[11] and int(tonumber(h[11]) + 1) or int(redis.call('INCR', P .. 'fence'))
  redis.call('HSET', tkey(best), 'state', 'RESERVED', 'agent_id', agent, 'lease_token', token,
    'lease_expires_at', expires, 'claimed_at', NOW, 'holds', token,
    'log', logged(h[10], 'claimed by ' .. agent .. ' lease ' .. token))
  -- Made whole, where fields set one by one would grow the table step by step.
  local r = {[ROW.state] = 'RESERVED', [ROW.agent_id] = agent, [ROW.lease_token] = token,
    [ROW.lease_expires_at] = expires, [ROW.claimed_at] = NOW, [ROW.team_id] = h[1],
    [ROW.urgency] = h[2], [ROW.incident_calls] = h[3], [ROW.attempts] = h[4],
    [ROW.enqueued_at] = h[5], [ROW.escalated] = h[6], [ROW.transferred_from] = h[7],
    [ROW.shown] = h[8], [ROW.kept] = h[9]}
  if not h[8] then
    r[ROW.shown], r[ROW.kept] = unpacked(best, SHOWN_NAMES), unpacked(best, KEPT_NAMES)
  end
  redis.call('ZADD', P .. 'leases', expires, best)
  local team = r[ROW.team_id]
  -- The team's claims, in one field read and written: 'QUEUED>RESERVED', a count of moves (see
  -- count_move) followed by the last claim's time and the interval between claims in ms (a
  -- moving average, which gives later callers their expected wait; -1 until a second claim).
  -- Where older servers kept the last two in fields of their own, those are read until then.
  local stats = skey(team)
  local figures = redis.call('HGET', stats, 'QUEUED>RESERVED')
  local claims, last, interval
  if figures then
    claims, last, interval = string.match(figures, '^(%d+) (%d+) (%-?%d+)$')
  else
    local s = redis.call('HMGET', stats, 'last_claim_at', 'claim_interval')
    claims, last, interval = '0', s[1], s[2]
  end
  local pace = '-1'
  if tonumber(last) then
    local gap = math.min(t - tonumber(last), 3600000)
    local previous = tonumber(interval) or -1
    pace = int(previous < 0 and gap or math.floor(previous * 0.8 + gap * 0.2))
  end
  redis.call('HSET', stats, 'QUEUED>RESERVED',
    int((tonumber(claims) or 0) + 1) .. ' ' .. NOW .. ' ' .. pace)
  if claim_id ~= '' then
    -- Kept as long as the lease, given as the time it ends (as it is written to the AOF).
    redis.call('SET', claim_key, best .. ' ' .. token, 'PXAT', expires)
  end
  emit_row(team, 'claimed', r)
  return row(r)
end

-- Completes ticket id (RESERVED | IN_PROGRESS -> COMPLETED) for its holder, agent under lease
-- token, at t; closes its incident. The answer is the ticket as completed (as it is when the
-- holder's retry finds it done), a row, or the refusal.
local function complete_held(id, agent, token, resolution, t)
  local r, refused = held_row(id, agent, token, 'complete', t)
  if refused then
    return refused
  end
  local state, team = r[ROW.state], r[ROW.team_id]
  local call, incident = kept_ids(r[ROW.kept])
  -- How the hold ended is recorded with the transition, in the same write.
  redis.call('HSET', tkey(id), 'state', 'COMPLETED', 'closed_at', NOW, 'resolution', resolution,
    'lease_expires_at', '', 'log', logged(r[ROW_FIELDS + 2], 'completed by ' .. agent .. ': '
    .. resolution), hold_end(agent, token, 'complete'))
  r[ROW.state], r[ROW.closed_at], r[ROW.resolution], r[ROW.lease_expires_at] =
    'COMPLETED', NOW, resolution, ''
  redis.call('ZREM', P .. 'leases', id)
  if incident ~= '' and redis.call('GET', P .. 'inc:' .. incident) == id then
    redis.call('DEL', P .. 'inc:' .. incident)
  end
  count_move(team, state, 'COMPLETED')
  emit_row(team, 'completed', r)
  expire_closed(id, incident, r.older and call)
  return row(r)
end
