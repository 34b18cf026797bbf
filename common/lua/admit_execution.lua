-- A slot is held from admission until the finisher (or a kill) ends the execution.
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 'RUN' end
local queueing = ARGV[3] == '1'
if redis.call('SCARD', KEYS[1]) < tonumber(ARGV[2])
   and (not queueing or redis.call('LLEN', KEYS[2]) == 0) then
  redis.call('SADD', KEYS[1], ARGV[1])
  return 'RUN'
end
if queueing then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  return 'QUEUED'
end
return 'REJECTED'
