-- complete: RESERVED | IN_PROGRESS -> COMPLETED by the holder; closes its incident.
-- ARGV[4..]: ticket id, agent id, lease token, resolution code.
return complete_held(ARGV[4], ARGV[5], ARGV[6], ARGV[7], now_ms())
