-- lease: one instance among several does a store-wide job (the metrics of the whole store).
-- KEYS: the lease (string). ARGV[4..]: holder, time to live in milliseconds.
-- Takes the lease when it is free, keeps it when the holder already has it; 1 when held.
local holder = redis.call('GET', KEYS[1])
if holder == false then
  redis.call('SET', KEYS[1], ARGV[4], 'PX', tonumber(ARGV[5]))
  return 1
end
if holder == ARGV[4] then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[5]))
  return 1
end
return 0
