-- fire: take one scheduled action of a request if it is due, and say when the next is due.
-- ARGV[1] kind: 'remind' (one more reminder, up to the limit; or, first, the posts of the
--                         last one owed again)
--               'escalate' (announce every escalation tier whose time has come; or, first,
--                           the posts of the last announcement owed again)
--               'owe' (ARGV[2]: JSON of the last reminder's, or with ARGV[3] 'escalate' the
--                      last announcement's, posts Slack surely did not take, merged with
--                      those already owed)
-- Returns {'fired', reminders sent | tiers reached, next due ms or '', the count before,
--          the state hash as HGETALL gives it}
--      or {'resend', the same four, the owed JSON}: the owed posts, taken once
--      or {'owed', now ms}, {'not_due', due ms or ''}, {'closed'}, {'unknown'}
-- The state's due time is the authority: whoever fires first moves it on, so the same action
-- claimed twice (two bots, a lease that ran out) fires once. The state comes back with it so
-- a sweeper firing many at once reads nothing more.

local kind = ARGV[1]
local due_field = kind == 'escalate' and 'esc_due' or 'remind_due'
local owed_field = (kind == 'escalate' or ARGV[3] == 'escalate') and 'esc_owed' or 'remind_owed'
local state = redis.call('HMGET', KEYS[2], 'status', 'deadline_ms', due_field, 'remind_every',
                         'remind_limit', 'reminders', 'tiers', 'tiers_reached', owed_field)
if not state[1] then
  return {'unknown'}
end
if state[1] ~= 'pending' then
  return {'closed'}
end
local now = now_ms()
if kind == 'owe' then
  -- Merged with posts already owed (another sweeper's, not yet taken): none is lost.
  local owed = ARGV[2]
  if state[9] then
    local old, new = cjson.decode(state[9]), cjson.decode(ARGV[2])
    local function union(a, b)
      local out, seen = {}, {}
      for _, list in ipairs({a or {}, b or {}}) do
        for _, u in ipairs(list) do
          if not seen[u] then seen[u] = true; table.insert(out, u) end
        end
      end
      return out
    end
    owed = cjson.encode({thread = old.thread or new.thread, users = union(old.users, new.users),
                         to = union(old.to, new.to), tries = math.max(old.tries, new.tries)})
  end
  redis.call('HSET', KEYS[2], owed_field, owed)
  return {'owed', tostring(now)}
end
if kind == 'remind' and state[9] then
  -- Whoever takes the owed posts first sends them: a resend happens once, like a reminder.
  redis.call('HDEL', KEYS[2], 'remind_owed')
  return {'resend', state[6], state[3] or '', state[6], redis.call('HGETALL', KEYS[2]), state[9]}
end
if kind == 'escalate' and state[9] then
  redis.call('HDEL', KEYS[2], 'esc_owed')
  return {'resend', state[8], state[3] or '', state[8], redis.call('HGETALL', KEYS[2]), state[9]}
end
if not state[3] or now < tonumber(state[3]) then
  return {'not_due', state[3] or ''}
end
local deadline = tonumber(state[2])
local nxt = ''
local count, before
if kind == 'remind' then
  before = tonumber(state[6])
  count = before + 1
  -- Counted from now, not from the due time: a bot that was down sends one reminder on its
  -- return, not every one it missed.
  if count < tonumber(state[5]) and now + tonumber(state[4]) < deadline then
    nxt = now + tonumber(state[4])
  end
  redis.call('HSET', KEYS[2], 'reminders', count)
  audit({event = 'reminded', at = now, reminder = count})
elseif kind == 'escalate' then
  local tiers = tonumber(state[7])
  before = tonumber(state[8])
  count = before
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
return {'fired', tostring(count), tostring(nxt), tostring(before),
        redis.call('HGETALL', KEYS[2])}
