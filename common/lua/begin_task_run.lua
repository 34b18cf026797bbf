-- begin_task_run: what a starting task needs, in one step. Moves the execution
-- from CREATED, QUEUED or RESTARTED to RUNNING, gets or creates the task's run
-- (one per task and loop value, whoever asks first) and returns it with the
-- execution's head. Creates nothing in an execution that has ended.
-- KEYS = the execution's keys (_EXECUTION_KEYS order, history last), then the
-- index of live attempts (a sorted set scored by last heartbeat);
-- ARGV = run key, run id, run JSON, heartbeat ('' when the run is not created
-- RUNNING), the RUNNING history entry, the run's member in the live index ('' for
-- a run with no process: a flowable), the key that finds the latest iteration's
-- run of a task inside a LoopUntil ('' otherwise; pointed at the run created),
-- the time (`moved`: the execution moved on).
-- Returns {run JSON or '', created 0/1, state, doc, error or ''}, or false.
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return false end
if state == 'CREATED' or state == 'QUEUED' or state == 'RESTARTED' then
  redis.call('HSET', KEYS[1], 'state', 'RUNNING')
  reindex_state(KEYS[1], state, 'RUNNING')  -- search index by state (state_index.lua)
  redis.call('RPUSH', KEYS[8], ARGV[5])
  for i = 1, 8 do redis.call('PERSIST', KEYS[i]) end
  state = 'RUNNING'
end
redis.call('HSET', KEYS[1], 'moved', ARGV[8])
local head = redis.call('HMGET', KEYS[1], 'doc', 'error')
local terminal = {SUCCESS = 1, WARNING = 1, FAILED = 1, KILLED = 1, CANCELLED = 1}
local run = ''
local created = 0
local existing = redis.call('HGET', KEYS[3], ARGV[1])
if existing then
  run = redis.call('HGET', KEYS[2], existing)
elseif not terminal[state] then
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
  if ARGV[7] ~= '' then redis.call('HSET', KEYS[3], ARGV[7], ARGV[2]) end
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
  if ARGV[4] ~= '' then
    redis.call('HSET', KEYS[5], ARGV[2], ARGV[4])
    if ARGV[6] ~= '' then redis.call('ZADD', KEYS[9], ARGV[4], ARGV[6]) end
  end
  run = ARGV[3]
  created = 1
end
return {run, created, state, head[1], head[2] or ''}
