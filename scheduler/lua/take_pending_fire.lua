-- take_pending_fire: compare-and-set on a pending fire, so exactly one replica
-- completes the fire of a claimant that died. KEYS = the hash of pending fires;
-- ARGV = the claim key (field), the JSON read, the JSON to write (taken by me).
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
