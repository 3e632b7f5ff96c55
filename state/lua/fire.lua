-- fire: take one scheduled action of a request if it is due, and say when the next is due.
-- ARGV[1] kind: 'remind' (one more reminder, up to the limit)
--               'escalate' (announce every escalation tier whose time has come)
-- Returns {'fired', reminders sent | tiers reached, next due ms or ''}
--      or {'not_due', due ms or ''}, {'closed'}, {'unknown'}
-- The state's due time is the authority: whoever fires first moves it on, so the same action
-- claimed twice (two bots, a lease that ran out) fires once.

if redis.call('EXISTS', KEYS[2]) == 0 then
  return {'unknown'}
end
local kind = ARGV[1]
local due_field = kind == 'remind' and 'remind_due' or 'esc_due'
local state = redis.call('HMGET', KEYS[2], 'status', 'deadline_ms', due_field)
if state[1] ~= 'pending' then
  return {'closed'}
end
local now = now_ms()
if not state[3] or now < tonumber(state[3]) then
  return {'not_due', state[3] or ''}
end
local deadline = tonumber(state[2])
local nxt = ''
local count
if kind == 'remind' then
  local st = redis.call('HMGET', KEYS[2], 'remind_every', 'remind_limit', 'reminders')
  count = tonumber(st[3]) + 1
  -- Counted from now, not from the due time: a bot that was down sends one reminder on its
  -- return, not every one it missed.
  if count < tonumber(st[2]) and now + tonumber(st[1]) < deadline then
    nxt = now + tonumber(st[1])
  end
  redis.call('HSET', KEYS[2], 'reminders', count)
  audit({event = 'reminded', at = now, reminder = count})
elseif kind == 'escalate' then
  local st = redis.call('HMGET', KEYS[2], 'tiers', 'tiers_reached')
  local tiers = tonumber(st[1])
  count = tonumber(st[2])
  local to = {}
  local spec = cjson.decode(redis.call('GET', KEYS[1]))
  while count < tiers and tonumber(redis.call('HGET', KEYS[2], 'tier_at:' .. (count + 1))) <= now do
    count = count + 1
    for _, who in ipairs(spec.escalate[count].to) do table.insert(to, who) end
  end
  if count < tiers then
    local at = tonumber(redis.call('HGET', KEYS[2], 'tier_at:' .. (count + 1)))
    if at < deadline then nxt = at end
  end
  redis.call('HSET', KEYS[2], 'tiers_reached', count)
  audit({event = 'escalated', at = now, tier = count, to = to})
else
  return redis.error_reply('fire: unknown kind ' .. kind)
end
if nxt == '' then
  redis.call('HDEL', KEYS[2], due_field)
else
  redis.call('HSET', KEYS[2], due_field, nxt)
end
return {'fired', tostring(count), tostring(nxt)}
