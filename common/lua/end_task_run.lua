-- end_task_run: a task run reaches its terminal state and is counted in its
-- block in the same step, so exactly one caller sees each run end; with
-- may_continue, the block's next task is claimed (one task ended, one starts).
-- KEYS = runs hash, ended hash, blocks hash, beats hash;
-- ARGV = run id, run JSON, state, block key, may_continue ('1' or '0').
-- Returns false when the run had already ended, else the block's progress:
-- {total, next, ended, stopped, claimed (-1: none), count per state...}.
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[3]) == 0 then return false end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[4], ARGV[1])
local b = ARGV[4] .. '\31'
local ended = redis.call('HINCRBY', KEYS[3], b .. 'ended', 1)
redis.call('HINCRBY', KEYS[3], b .. ARGV[3], 1)
if ARGV[3] == 'FAILED' or ARGV[3] == 'KILLED' then
  redis.call('HSET', KEYS[3], b .. 'stopped', '1')
end
local total = tonumber(redis.call('HGET', KEYS[3], b .. 'total') or '0')
local nxt = tonumber(redis.call('HGET', KEYS[3], b .. 'next') or '0')
local stopped = redis.call('HGET', KEYS[3], b .. 'stopped') == '1'
local claimed = -1
if ARGV[5] == '1' and not stopped and nxt < total then
  claimed = nxt
  nxt = nxt + 1
  redis.call('HSET', KEYS[3], b .. 'next', nxt)
end
local counts = redis.call('HMGET', KEYS[3], b .. 'SUCCESS', b .. 'WARNING', b .. 'FAILED',
                          b .. 'KILLED', b .. 'SKIPPED')
return {total, nxt, ended, stopped and 1 or 0, claimed,
        counts[1] or '0', counts[2] or '0', counts[3] or '0', counts[4] or '0',
        counts[5] or '0'}
