-- mail: where one email approver's mail stands, so that any number of bots send it once.
-- KEYS[1..4] the request's keys   KEYS[5], KEYS[6] its approve and reject links (begin only)
-- ARGV[1] 'begin' | 'sent' | 'failed'   ARGV[2] the address   ARGV[3] retention ms
-- begin:  ARGV[4] lease ms   ARGV[5] the Slack user the address belongs to, or ''
--         takes the send for a lease, records the alias, writes both links (hashes of their
--         tokens only) -> {'go', deadline ms}; or {'unknown'}, {'closed'}, {'not_approver'},
--         {'done'} (sent, or failed for good), {'busy'} (another bot holds the lease)
-- sent:   -> {'ok'}       failed: ARGV[4] reason   ARGV[5] '1' when no retry can help -> {'ok'}
-- State fields: `mail:<address>` 'sent:<ms>' | 'failed:<ms>', `mail_lock:<address>` ms,
-- `alias:mailto:<address>` the Slack user, who is then eligible as `approver:<user>` too.

if redis.call('EXISTS', KEYS[2]) == 0 then
  return {'unknown'}
end
local mode, address = ARGV[1], ARGV[2]
local voter = 'mailto:' .. address
local now = now_ms()
if mode == 'begin' then
  local st = redis.call('HMGET', KEYS[2], 'status', 'deadline_ms', 'approver:' .. voter,
                        'mail:' .. address, 'mail_lock:' .. address)
  if st[1] ~= 'pending' then return {'closed'} end
  if not st[3] then return {'not_approver'} end
  if st[4] then return {'done'} end
  if st[5] and now < tonumber(st[5]) + tonumber(ARGV[4]) then return {'busy'} end
  redis.call('HSET', KEYS[2], 'mail_lock:' .. address, now)
  local user = ARGV[5]
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
elseif mode == 'sent' then
  redis.call('HSET', KEYS[2], 'mail:' .. address, 'sent:' .. now)
  redis.call('HDEL', KEYS[2], 'mail_lock:' .. address)
  audit({event = 'mailed', at = now, address = address})
  return {'ok'}
elseif mode == 'failed' then
  if ARGV[5] == '1' then
    redis.call('HSET', KEYS[2], 'mail:' .. address, 'failed:' .. now)
  end
  redis.call('HDEL', KEYS[2], 'mail_lock:' .. address)
  audit({event = 'mail_failed', at = now, address = address, reason = ARGV[4],
         final = ARGV[5] == '1'})
  return {'ok'}
end
return redis.error_reply('mail: unknown mode ' .. tostring(mode))
