-- claim: the most urgent, longest-waiting ticket across the given queues of one partition.
-- KEYS: the queues. ARGV[4..]: agent id, lease (ms), claim id ('' for none).
return claim_from(KEYS, ARGV[4], ARGV[5], ARGV[6], now_ms())
