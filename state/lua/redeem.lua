-- redeem: a vote through an approval link, the link used up in the same script as the vote.
-- KEYS[1..4] the request's keys   KEYS[5] the link (hash: voter, vote, used_ms once used)
-- ARGV: the same as decide.lua's; ARGV[1] (user) and ARGV[2] (vote) are taken from the link
-- Returns {'link_unknown', ''} or {'link_used', used ms} with nothing written, otherwise
-- decide's answer. The link is used up only by a vote that counts: a refused one (closed,
-- expired) leaves it to say so again. scripts.py appends the body of decide.lua below,
-- wrapped in a function, so every rule of a vote is written once.

if redis.call('EXISTS', KEYS[5]) == 0 then
  return {'link_unknown', ''}
end
local link = redis.call('HMGET', KEYS[5], 'voter', 'vote', 'used_ms')
if link[3] then
  return {'link_used', link[3]}
end
-- An address that belongs to a Slack user votes as that user (one person, one vote, and the
-- self-approval rule sees the requester's own address).
local voter = redis.call('HGET', KEYS[2], 'alias:' .. link[1]) or link[1]
ARGV[1] = voter
ARGV[2] = link[2]
local prelude_audit = audit
local function audit(entry)
  if entry.event == 'vote' then
    entry.via = 'link'
    if voter ~= link[1] then entry.address = string.sub(link[1], 8) end
  end
  prelude_audit(entry)
end
