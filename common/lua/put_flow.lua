-- put_flow in one step, so two API calls pushing at once get distinct revisions
-- and pushing the same source twice does not create a new revision.
local latest = tonumber(redis.call('GET', KEYS[1]) or '0')
redis.call('SADD', KEYS[3], ARGV[3])
local was_deleted = redis.call('DEL', KEYS[4])
if latest > 0 and was_deleted == 0 then
  local current = redis.call('HGET', KEYS[2], tostring(latest))
  if current and cjson.decode(current)['source'] == ARGV[1] then return latest end
end
latest = latest + 1
redis.call('SET', KEYS[1], latest)
redis.call('HSET', KEYS[2], tostring(latest), ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
return latest
