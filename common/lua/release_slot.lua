redis.call('SREM', KEYS[1], ARGV[1])
local started = {}
while redis.call('SCARD', KEYS[1]) < tonumber(ARGV[2]) do
  local next_id = redis.call('LPOP', KEYS[2])
  if not next_id then break end
  redis.call('SADD', KEYS[1], next_id)
  table.insert(started, next_id)
end
return started
