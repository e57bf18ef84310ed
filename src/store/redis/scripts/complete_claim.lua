-- complete_claim: a desk's "done, next" in one step: completes a held ticket (as complete does),
-- then claims the next ticket for the same agent (as claim does) from queues of the ticket's
-- partition. A refused completion claims nothing (the refusal is the reply). Replies {the
-- completed ticket, the claimed ticket or nil}, each a row; a retry whose answer was lost finds
-- the completion done and, with the same claim id, the same hold.
-- KEYS: the ticket, then the queues. ARGV[4..]: ticket id, agent id, lease token, resolution code,
-- lease (ms), claim id ('' for none).
local t = now_ms()
local completed = complete_held(ARGV[4], ARGV[5], ARGV[6], ARGV[7], t)
if type(completed) == 'table' then
  -- A refusal (an error reply).
  return completed
end
local queues = {}
for i = 2, #KEYS do
  queues[#queues + 1] = KEYS[i]
end
return {completed, claim_from(queues, ARGV[5], ARGV[8], ARGV[9], t)}
