-- attach: remember where the request's Slack message lives; the first post wins.
-- ARGV[1] channel id   ARGV[2] message ts
-- Returns {'attached'|'exists'|'unknown'}

if redis.call('EXISTS', KEYS[2]) == 0 then
  return {'unknown'}
end
if redis.call('HEXISTS', KEYS[2], 'msg_ts') == 1 then
  return {'exists'}
end
redis.call('HSET', KEYS[2], 'msg_channel', ARGV[1], 'msg_ts', ARGV[2])
audit({event = 'posted', at = now_ms(), channel = ARGV[1], ts = ARGV[2]})
return {'attached'}
