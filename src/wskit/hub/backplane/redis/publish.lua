-- Publish a numbered message: the Redis backplane's one script (see outbox.py).
--
-- Takes the next offset of the room (or of the global channel), appends the
-- message to its stream and publishes it with that offset, atomically, so
-- that every node sees the messages of a room in one order, numbered without
-- gaps. A sequence number of the publishing node already applied (a publish
-- retried after a lost answer) is not applied again: the script returns 0.
-- A meta key without an epoch (new, or expired with its idle room) starts a
-- new epoch, with an empty stream.
--
-- KEYS: meta (a hash: epoch, top, n:NODE), stream.
-- ARGV: channel, node, seq, exclude (JSON), message, maxlen, ttl (ms), epoch.
-- Returns the offset given to the message, or 0 for a duplicate.
local last = redis.call('HGET', KEYS[1], 'n:' .. ARGV[2])
if last and tonumber(last) >= tonumber(ARGV[3]) then
  return 0
end
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[8]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch)
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
