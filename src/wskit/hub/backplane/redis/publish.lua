-- Publish a numbered message: the Redis backplane's one script (see outbox.py).
--
-- Takes the next offset of the room (or of the global channel), appends the
-- message to its stream and publishes it with that offset, atomically, so
-- that every node sees the messages of a room in one order, numbered without
-- gaps. A sequence number of the publishing node already applied (a publish
-- retried after a lost answer) is not applied again: the script returns 0.
-- A meta key without an epoch (new, or expired with its idle room) starts a
-- new epoch, with an empty stream. So does a failover since the room's last
-- write, unless writes are confirmed with WAIT (see failover.py): the
-- generation (Sentinel's config epoch + 1; 0 without Sentinel) grew, and the
-- new primary may lack messages that clients had, whose offsets would be
-- given to others.
--
-- KEYS: meta (a hash: epoch, top, g, n:NODE), stream.
-- ARGV: channel, node, seq, exclude (JSON), message, maxlen, ttl (ms), epoch,
-- generation, '1' when a new generation ends the epoch.
-- Returns the offset given to the message, or 0 for a duplicate.
local meta = redis.call('HMGET', KEYS[1], 'n:' .. ARGV[2], 'epoch', 'g')
if meta[1] and tonumber(meta[1]) >= tonumber(ARGV[3]) then
  return 0
end
local epoch = meta[2]
local generation = tonumber(ARGV[9])
if generation > tonumber(meta[3] or 0) then
  if meta[3] and ARGV[10] == '1' then
    epoch = false
  end
  redis.call('HSET', KEYS[1], 'g', generation)
end
if not epoch then
  epoch = ARGV[8]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'top', 0)
end
local offset = redis.call('HINCRBY', KEYS[1], 'top', 1)
redis.call('HSET', KEYS[1], 'n:' .. ARGV[2], ARGV[3])
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[6], offset .. '-0',
  'm', ARGV[5], 'x', ARGV[4], 'n', ARGV[2], 's', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
redis.call('PEXPIRE', KEYS[2], ARGV[7])
redis.call('PUBLISH', ARGV[1], '{"k":"m","e":"' .. epoch .. '","o":' .. offset ..
  ',"n":"' .. ARGV[2] .. '","s":' .. ARGV[3] .. ',"x":' .. ARGV[4] .. '}\n' .. ARGV[5])
return offset
