-- claim: take up to ARGV[1] due entries of one schedule (a sorted set of request ids by due ms).
-- KEYS[1] the schedule   ARGV[1] limit   ARGV[2] lease ms
-- Returns the claimed request ids. Each is moved a lease ahead rather than removed: another
-- bot skips it, and if the claimer dies before firing it comes due again after the lease.

local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local lease = now + tonumber(ARGV[2])
-- One ZADD for many entries (in slices: Lua's unpack has a bounded stack).
for start = 1, #due, 500 do
  local args = {}
  for j = start, math.min(start + 499, #due) do
    args[#args + 1] = lease
    args[#args + 1] = due[j]
  end
  redis.call('ZADD', KEYS[1], unpack(args))
end
return due
