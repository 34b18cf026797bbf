-- change_execution_state: KEYS = the execution's keys (hash first, history
-- last), its `done` list, then the stream of ended executions; ARGV = new
-- state, states it may come from, the history entry, error, terminal?,
-- retention seconds, clear the halt flag?, the stream's approximate length cap,
-- then optionally an ended task run saved in the same step (its id and JSON):
-- no reader ever sees the execution changed without it (a Pause cancelled at
-- expiry: CANCELLED with its run KILLED).
-- An execution that ends is appended to the stream in the same call (here, and
-- in end_task_run.lua when the last task ends a plain flow): the Flow
-- triggers (scheduler/flow_triggers.py) read it, so no end is ever missed.
local done, ended = KEYS[#KEYS - 1], KEYS[#KEYS]
local last = #KEYS - 2
local current = redis.call('HGET', KEYS[1], 'state')
if not current then return {-1, ''} end
if current == ARGV[1] then return {0, current} end
if not string.find(',' .. ARGV[2] .. ',', ',' .. current .. ',', 1, true) then
  return {-2, current}
end
redis.call('HSET', KEYS[1], 'state', ARGV[1])
reindex_state(KEYS[1], current, ARGV[1])  -- search index by state (state_index.lua)
redis.call('RPUSH', KEYS[last], ARGV[3])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[4]) end
if ARGV[7] == '1' then redis.call('HDEL', KEYS[1], 'halted') end
if ARGV[9] and ARGV[9] ~= '' then redis.call('HSET', KEYS[2], ARGV[9], ARGV[10]) end
for i = 1, last do
  if ARGV[5] == '1' then redis.call('EXPIRE', KEYS[i], ARGV[6])
  else redis.call('PERSIST', KEYS[i]) end
end
if ARGV[5] == '1' then
  redis.call('RPUSH', done, '1')
  redis.call('EXPIRE', done, 60)
  local id = string.match(KEYS[1], '[^:]+$')
  redis.call('XADD', ended, 'MAXLEN', '~', ARGV[8], '*', 'id', id, 'state', ARGV[1])
end
return {1, current}
