-- End the epoch of a room's stream that diverged (see failover.py).
--
-- A failover may leave the new primary's stream without messages the nodes
-- delivered from the old one; the offsets they had are then given to other
-- messages. The node that notices starts a new epoch, with an empty stream,
-- unless the epoch changed already (another node did). The entries of the
-- old epoch from offset FROM on are returned, so that the node delivers those
-- it never had; the sequence numbers of the publishing nodes (n:NODE) stay.
--
-- KEYS: meta (a hash: epoch, top, n:NODE), stream.
-- ARGV: the diverged epoch, the new epoch, FROM.
-- Returns {the epoch now, the entries of the old epoch from FROM on}.
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if epoch ~= ARGV[1] then
  return {epoch or '', {}}
end
local entries = redis.call('XRANGE', KEYS[2], ARGV[3] .. '-0', '+')
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'epoch', ARGV[2], 'top', 0)
return {ARGV[2], entries}
