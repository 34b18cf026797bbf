-- find_task_run: the run of a task (and loop value), or false if it never started.
-- KEYS = runkeys hash, runs hash; ARGV = run key.
local id = redis.call('HGET', KEYS[1], ARGV[1])
if not id then return false end
return redis.call('HGET', KEYS[2], id)
