-- claim_tick: one winner per (trigger, tick), and the winner's fire is recorded
-- as pending in the same step, so a scheduler that dies before its execution
-- exists leaves a record another replica completes (see fire_pending).
-- KEYS = the claim key, the hash of pending fires;
-- ARGV = owner, claim ttl seconds, pending fire JSON ('' to record none).
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return 0 end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[2], KEYS[1], ARGV[3]) end
return 1
