-- decide_flow_trigger: whether one Flow trigger fires for one ended execution,
-- decided once and remembered, so a replica that retries the same stream
-- entry (after another one died) reaches the same answer.
-- KEYS = the decision (one per upstream execution and trigger), the trigger's
-- preconditions window of the day; ARGV = ttl seconds, number of conditions
-- (0: no preconditions, the trigger's conditions held: fire), reset on
-- success ('1'/'0'), then the ids of the conditions this execution satisfies.
-- Returns the decision: 'fire', 'skip' or 'done' (fired and started).
local decided = redis.call('GET', KEYS[1])
if decided then return decided end
local total = tonumber(ARGV[2])
local decision = 'fire'
if total > 0 then
  for i = 4, #ARGV do redis.call('HSET', KEYS[2], ARGV[i], '1') end
  redis.call('EXPIRE', KEYS[2], 2 * 86400)
  if redis.call('HLEN', KEYS[2]) >= total then
    if ARGV[3] == '1' then redis.call('DEL', KEYS[2]) end
  else
    decision = 'skip'
  end
end
redis.call('SET', KEYS[1], decision, 'EX', ARGV[1])
return decision
