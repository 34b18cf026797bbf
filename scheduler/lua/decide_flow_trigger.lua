-- decide_flow_trigger: whether one Flow trigger fires for one ended execution,
-- decided once and remembered, so a replica that retries the same stream
-- entry (after another one died) reaches the same answer.
-- KEYS = the decision (one per upstream execution and trigger), the trigger's
-- preconditions window (a hash: condition id -> when it was last met, ms);
-- ARGV = decision ttl seconds, number of conditions (0: no preconditions, the
-- trigger's conditions held: fire), reset on success ('1'/'0'), now (ms),
-- the window's start (ms: a condition met before it no longer counts), the
-- window key's ttl seconds, then the ids of the conditions this end meets.
-- Returns the decision: 'fire', 'skip' or 'done' (fired and started).
local decided = redis.call('GET', KEYS[1])
if decided then return decided end
local total = tonumber(ARGV[2])
local decision = 'fire'
if total > 0 then
  for i = 7, #ARGV do redis.call('HSET', KEYS[2], ARGV[i], ARGV[4]) end
  redis.call('EXPIRE', KEYS[2], ARGV[6])
  local met = 0
  local fields = redis.call('HGETALL', KEYS[2])
  for i = 2, #fields, 2 do
    if tonumber(fields[i]) >= tonumber(ARGV[5]) then met = met + 1 end
  end
  if met >= total then
    if ARGV[3] == '1' then redis.call('DEL', KEYS[2]) end
  else
    decision = 'skip'
  end
end
redis.call('SET', KEYS[1], decision, 'EX', ARGV[1])
return decision
