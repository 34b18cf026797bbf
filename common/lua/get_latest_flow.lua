-- The latest revision of a flow and its document in one round trip:
-- {revision, document}, or nil when the flow is unknown or deleted.
-- KEYS: latest (revision number), deleted (marker), revisions (hash).
local latest = redis.call('GET', KEYS[1])
if not latest or redis.call('EXISTS', KEYS[2]) == 1 then return nil end
local document = redis.call('HGET', KEYS[3], latest)
if not document then return nil end
return {latest, document}
