-- start_block: the first run of a block claims its first `window` tasks; a
-- block that was already started claims nothing and says where it stands.
-- KEYS = blocks hash; ARGV = block key, total, window (0: all).
-- Returns {total, next, ended, stopped, claimed count, count per state...}.
local b = ARGV[1] .. '\31'
local claimed = 0
if redis.call('HSETNX', KEYS[1], b .. 'total', ARGV[2]) == 1 then
  local total = tonumber(ARGV[2])
  local window = tonumber(ARGV[3])
  if window <= 0 or window > total then window = total end
  redis.call('HSET', KEYS[1], b .. 'next', window, b .. 'ended', 0)
  claimed = window
end
local v = redis.call('HMGET', KEYS[1], b .. 'total', b .. 'next', b .. 'ended', b .. 'stopped',
                     b .. 'SUCCESS', b .. 'WARNING', b .. 'FAILED', b .. 'KILLED',
                     b .. 'SKIPPED')
return {v[1], v[2], v[3], v[4] == '1' and 1 or 0, claimed,
        v[5] or '0', v[6] or '0', v[7] or '0', v[8] or '0', v[9] or '0'}
