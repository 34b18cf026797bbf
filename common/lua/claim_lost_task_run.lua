-- claim_lost_task_run: exactly one scheduler replica takes charge of a task run
-- whose heartbeats stopped. The claim is a compare-and-set on the run's score in
-- the index of live attempts: still older than the cutoff, it moves to
-- `hold_until` (the re-run has until then to beat before it counts as lost too).
-- KEYS = the live index, the execution's hash, its `ended` hash, its `runs` hash;
-- ARGV = member, run id, cutoff, hold_until.
-- Returns {execution state, run JSON}; false when there is nothing to claim (a
-- run that ended or whose execution is gone also leaves the index).
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[3]) then return false end
local state = redis.call('HGET', KEYS[2], 'state')
local run = redis.call('HGET', KEYS[4], ARGV[2])
if not state or not run or redis.call('HEXISTS', KEYS[3], ARGV[2]) == 1 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return false
end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
return {state, run}
