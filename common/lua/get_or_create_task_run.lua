-- get_or_create_task_run: one task run per (task, value), whoever asks first.
-- KEYS = the execution's keys (_EXECUTION_KEYS order); ARGV = run key, run id,
-- run JSON, heartbeat ('' when the run is not created RUNNING), then, to also
-- start the execution in the same step, its history entry ('' not to).
if ARGV[5] ~= '' then
  local current = redis.call('HGET', KEYS[1], 'state')
  if current == 'CREATED' or current == 'QUEUED' or current == 'RESTARTED' then
    redis.call('HSET', KEYS[1], 'state', 'RUNNING')
    reindex_state(KEYS[1], current, 'RUNNING')  -- search index by state (state_index.lua)
    redis.call('RPUSH', KEYS[#KEYS], ARGV[5])
    for i = 1, #KEYS do redis.call('PERSIST', KEYS[i]) end
  end
end
local existing = redis.call('HGET', KEYS[3], ARGV[1])
if existing then return redis.call('HGET', KEYS[2], existing) end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[5], ARGV[2], ARGV[4]) end
return ARGV[3]
