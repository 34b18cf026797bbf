-- state_index: prepended to the scripts that change an execution's state, so
-- the per-state search indexes move with the state in the same atomic step.
-- The execution hash holds `sidx` (index key prefixes, one per line: global,
-- namespace, flow) and `score` (its start time); the index of state S under
-- prefix P is the sorted set P .. '|' .. S. Executions without `sidx` are
-- simply not indexed by state.
local function reindex_state(hash, old, new)
  if old == new then return end
  local found = redis.call('HMGET', hash, 'sidx', 'score')
  if not found[1] then return end
  local id = string.match(hash, '[^:]+$')
  for prefix in string.gmatch(found[1], '[^\n]+') do
    if old then redis.call('ZREM', prefix .. '|' .. old, id) end
    redis.call('ZADD', prefix .. '|' .. new, found[2], id)
  end
end
