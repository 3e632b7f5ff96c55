-- mail: where one email approver's mail stands, so that any number of bots send it once.
-- KEYS[1..4] the request's keys   KEYS[5], KEYS[6] its approve and reject links (begin only)
-- ARGV[1] 'begin' | 'sent' | 'failed'   ARGV[2] the address   ARGV[3] retention ms
-- ARGV[4] the lease's owner (random per attempt; '' for a failure before any lease was taken)
-- begin:  ARGV[5] lease ms   ARGV[6] the Slack user the address belongs to, or ''
--         takes the send for a lease, records the alias, writes both links (hashes of their
--         tokens only) -> {'go', deadline ms}; or {'unknown'}, {'closed'} (decided, or its
--         deadline passed), {'not_approver'}, {'done'} (sent, or failed for good),
--         {'busy'} (another bot holds the lease)
-- sent:   -> {'ok'} (recorded even when the lease was lost: the mail did go out)
-- failed: ARGV[5] reason   ARGV[6] '1' when no retry can help
--         -> {'ok', failures in a row} or {'lost'} (another bot holds the lease now)
-- State fields: `mail:<address>` 'sent:<ms>' | 'failed:<ms>', `mail_lock:<address>`
-- '<lease end ms>:<owner>' (a bare number: a lease's start, written before owners were kept), `mail_fails:<address>` failures in a row (for the sender's backoff),
-- `mail_error:<address>` the last failure's reason (audited only when it changes),
-- `alias:mailto:<address>` the Slack user, who is then eligible as `approver:<user>` too.

if redis.call('EXISTS', KEYS[2]) == 0 then
  return {'unknown'}
end
local mode, address, owner = ARGV[1], ARGV[2], ARGV[4]
local voter = 'mailto:' .. address
local lock_field = 'mail_lock:' .. address
local now = now_ms()
-- When the lease ends, by the lease its holder took, and who holds it.
local function lock_of(value, lease)
  if not value then return nil, nil end
  local ends, holder = string.match(value, '^(%d+):(.*)$')
  if ends then return tonumber(ends), holder end
  return tonumber(value) + lease, ''
end
if mode == 'begin' then
  local st = redis.call('HMGET', KEYS[2], 'status', 'deadline_ms', 'approver:' .. voter,
                        'mail:' .. address, lock_field)
  if st[1] ~= 'pending' or now >= tonumber(st[2]) then return {'closed'} end
  if not st[3] then return {'not_approver'} end
  if st[4] then return {'done'} end
  local ends = lock_of(st[5], tonumber(ARGV[5]))
  if ends and now < ends then return {'busy'} end
  redis.call('HSET', KEYS[2], lock_field, (now + tonumber(ARGV[5])) .. ':' .. owner)
  local user = ARGV[6]
  if user ~= '' and redis.call('HSETNX', KEYS[2], 'alias:' .. voter, user) == 1 then
    redis.call('HSET', KEYS[2], 'approver:' .. user, '1')
    audit({event = 'aliased', at = now, user = user, address = address})
  end
  local expire_at = tonumber(st[2]) + tonumber(ARGV[3])
  redis.call('HSET', KEYS[5], 'voter', voter, 'vote', 'approve')
  redis.call('HSET', KEYS[6], 'voter', voter, 'vote', 'reject')
  redis.call('PEXPIREAT', KEYS[5], expire_at)
  redis.call('PEXPIREAT', KEYS[6], expire_at)
  return {'go', st[2]}
end
-- Only the lease's own owner may let it go: a bot whose lease ran out must not free the
-- lease another bot took since.
local _, holder = lock_of(redis.call('HGET', KEYS[2], lock_field), 0)
local ours = holder == nil or holder == owner
if mode == 'sent' then
  redis.call('HSET', KEYS[2], 'mail:' .. address, 'sent:' .. now)
  redis.call('HDEL', KEYS[2], 'mail_fails:' .. address, 'mail_error:' .. address)
  if ours then redis.call('HDEL', KEYS[2], lock_field) end
  audit({event = 'mailed', at = now, address = address})
  return {'ok'}
elseif mode == 'failed' then
  if not ours then return {'lost'} end
  local final = ARGV[6] == '1'
  if final then
    redis.call('HSET', KEYS[2], 'mail:' .. address, 'failed:' .. now)
  end
  redis.call('HDEL', KEYS[2], lock_field)
  local fails = redis.call('HINCRBY', KEYS[2], 'mail_fails:' .. address, 1)
  local before = redis.call('HGET', KEYS[2], 'mail_error:' .. address)
  redis.call('HSET', KEYS[2], 'mail_error:' .. address, ARGV[5])
  -- A mail server down for days must not write an audit line per try: the first failure,
  -- a new reason and the final one are what a reader needs.
  if fails == 1 or final or before ~= ARGV[5] then
    audit({event = 'mail_failed', at = now, address = address, reason = ARGV[5],
           final = final, failures = fails})
  end
  return {'ok', fails}
end
return redis.error_reply('mail: unknown mode ' .. tostring(mode))
