-- Monotonic max: never moves last_fired backwards, whatever order replicas report in.
local current = redis.call('HGET', KEYS[1], ARGV[1])
if (not current) or tonumber(current) < tonumber(ARGV[2]) then
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
    return ARGV[2]
end
return current
