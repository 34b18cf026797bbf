-- state_index: prepended to the scripts that change an execution's state, so
-- the per-state search indexes move with the state in the same atomic step.
-- The execution hash holds `sidx` (index key prefixes, one per line: global,
-- namespace, flow) and `score` (its start time); the index of state S under
-- prefix P is the sorted set P .. '|' .. S. Executions without `sidx` are
-- simply not indexed by state.
local ENDS = {SUCCESS = true, WARNING = true, FAILED = true, KILLED = true,
              CANCELLED = true, SKIPPED = true, RETRIED = true}
local function reindex_state(hash, old, new)
  if old == new then return end
  -- An execution that ends leaves an event on the `ended` stream in the same
  -- atomic step: Flow triggers read it (scheduler/flow_trigger_stream.py), so
  -- no end is missed whoever ended it.
  if ENDS[new] and not ENDS[old or ''] then
    local base = string.match(hash, '^(.*):exec:[^:]+$')
    if base then
      redis.call('XADD', base .. ':ended', 'MAXLEN', '~', 100000, '*',
                 'id', string.match(hash, '[^:]+$'), 'state', new)
    end
  end
  local found = redis.call('HMGET', hash, 'sidx', 'score')
  if not found[1] then return end
  local id = string.match(hash, '[^:]+$')
  for prefix in string.gmatch(found[1], '[^\n]+') do
    if old then redis.call('ZREM', prefix .. '|' .. old, id) end
    redis.call('ZADD', prefix .. '|' .. new, found[2], id)
  end
end
