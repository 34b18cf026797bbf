-- end_task_run: a task run reaches its terminal state and is counted in its
-- block in the same step, so exactly one caller sees each run end; with
-- may_continue, the block's next task is claimed (one task ended, one starts).
-- With finish, ending the last task of a plain flow's `tasks` well also ends
-- the execution (one round trip less per execution).
-- KEYS = the execution's keys (_EXECUTION_KEYS order: hash, runs, runkeys,
-- logs, beats, blocks, ended, history), its `done` list, the index of live
-- attempts, the stream of ended executions (as change_execution_state.lua:
-- the Flow triggers read it); ARGV = run id (or a loop iteration's marker), run JSON ('' for a
-- marker), state, block key, may_continue ('1' or '0'), finish ('1' or '0'),
-- the history entry's timestamp, retention seconds, the run's member in the
-- live index ('' for a marker), the stream's approximate length cap.
-- Returns false when the run had already ended, else the block's progress:
-- {total, next, ended, stopped, claimed (-1: none), count per state...,
-- the execution's final state or ''}.
if redis.call('HSETNX', KEYS[7], ARGV[1], ARGV[3]) == 0 then return false end
if ARGV[2] ~= '' then  -- '' : not a task run but a loop's iteration (end_block_item)
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'moved', ARGV[7])  -- the execution moved on
end
  redis.call('HDEL', KEYS[5], ARGV[1])
  redis.call('ZREM', KEYS[10], ARGV[9])
end
local b = ARGV[4] .. '\31'
local ended = redis.call('HINCRBY', KEYS[6], b .. 'ended', 1)
redis.call('HINCRBY', KEYS[6], b .. ARGV[3], 1)
if ARGV[3] == 'FAILED' or ARGV[3] == 'KILLED' then
  redis.call('HSET', KEYS[6], b .. 'stopped', '1')
end
local total = tonumber(redis.call('HGET', KEYS[6], b .. 'total') or '0')
local nxt = tonumber(redis.call('HGET', KEYS[6], b .. 'next') or '0')
local stopped = redis.call('HGET', KEYS[6], b .. 'stopped') == '1'
local claimed = -1
if ARGV[5] == '1' and not stopped and nxt < total then
  claimed = nxt
  nxt = nxt + 1
  redis.call('HSET', KEYS[6], b .. 'next', nxt)
end
local counts = redis.call('HMGET', KEYS[6], b .. 'SUCCESS', b .. 'WARNING', b .. 'FAILED',
                          b .. 'KILLED', b .. 'SKIPPED')
local finished = ''
if ARGV[6] == '1' and ended >= nxt and (nxt >= total or stopped)
    and tonumber(counts[3] or '0') == 0 and tonumber(counts[4] or '0') == 0 then
  local final = 'SUCCESS'
  if tonumber(counts[2] or '0') > 0 then final = 'WARNING' end
  if redis.call('HGET', KEYS[1], 'state') == 'RUNNING' then
    redis.call('HSET', KEYS[1], 'state', final)
    reindex_state(KEYS[1], 'RUNNING', final)  -- search index by state (state_index.lua)
    redis.call('RPUSH', KEYS[8], final .. '|' .. ARGV[7])
    for i = 1, 8 do redis.call('EXPIRE', KEYS[i], ARGV[8]) end
    redis.call('RPUSH', KEYS[9], '1')
    redis.call('EXPIRE', KEYS[9], 60)
    redis.call('XADD', KEYS[11], 'MAXLEN', '~', ARGV[10], '*', 'id',
               string.match(KEYS[1], '[^:]+$'), 'state', final)
    finished = final
  end
end
return {total, nxt, ended, stopped and 1 or 0, claimed,
        counts[1] or '0', counts[2] or '0', counts[3] or '0', counts[4] or '0',
        counts[5] or '0', finished}
