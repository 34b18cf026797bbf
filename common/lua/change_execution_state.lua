-- change_execution_state: KEYS = the execution's keys (hash first, history
-- last) then its `done` list; ARGV = new state, states it may come from, the
-- history entry, error, terminal?, retention seconds, clear the halt flag?
local current = redis.call('HGET', KEYS[1], 'state')
if not current then return {-1, ''} end
if current == ARGV[1] then return {0, current} end
if not string.find(',' .. ARGV[2] .. ',', ',' .. current .. ',', 1, true) then
  return {-2, current}
end
redis.call('HSET', KEYS[1], 'state', ARGV[1])
reindex_state(KEYS[1], current, ARGV[1])  -- search index by state (state_index.lua)
redis.call('RPUSH', KEYS[#KEYS - 1], ARGV[3])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[4]) end
if ARGV[7] == '1' then redis.call('HDEL', KEYS[1], 'halted') end
for i = 1, #KEYS - 1 do
  if ARGV[5] == '1' then redis.call('EXPIRE', KEYS[i], ARGV[6])
  else redis.call('PERSIST', KEYS[i]) end
end
if ARGV[5] == '1' then
  redis.call('RPUSH', KEYS[#KEYS], '1')
  redis.call('EXPIRE', KEYS[#KEYS], 60)
end
return {1, current}
