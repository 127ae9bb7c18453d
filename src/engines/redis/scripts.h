// The Lua scripts of the Redis engine. Each runs atomically in Redis, which is what makes a
// channel's order the same on every node: the offset, the history entry and the PUBLISH of one
// publication happen in one step. Key layout, per channel C under prefix P:
//   P{C}.m  hash  e = epoch, o = last offset          (the stream's position)
//   P{C}.h  stream of publications, ids "<offset>-0", fields t (Redis ms), d (data)
//   P{C}.i.<key>  string "epoch offset" with a PX TTL  (idempotency keys)
//   P{C}.p  hash  client id -> presence value          (see encodePresence in redis_engine.cpp)
//   P{C}    the pub/sub channel: "m<epoch>\n<offset>\n<ms>\n<data>", "j<value>", "l<value>"
//   P nodes             zset  node id -> last heartbeat (Redis ms)
//   P node:<id>         hash  name, connections
//   P node:<id>:presence set of "<channel>\n<client id>" the node added (reaped when it dies)
//   P session:<id>      hash  owner, holder, "c:<channel>" -> "epoch offset"
//   P boot, P gen       the Redis run_id last seen, and how many Redis starts there were
//                       (a stream's hash keeps the generation it was made in: g)
// Times come from Redis's own clock (TIME), so nodes with skewed clocks agree on TTLs.
#pragma once

#include <string_view>

namespace sb::engines::redis::scripts {

// KEYS: meta, history, idempotency key, boot generation. ARGV: data, history_size, history_ttl_ms,
// idempotency_window_ms, new epoch (used if the stream does not exist), pub/sub channel,
// idle ttl ms, "1" if there is an idempotency key.
// Returns {1, epoch, offset, ms} or, for a duplicate, {0, epoch, offset, ms}.
inline constexpr std::string_view kPublish = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[8] == '1' then
  local prev = redis.call('GET', KEYS[3])
  if prev then
    local sp = string.find(prev, ' ', 1, true)
    return {0, string.sub(prev, 1, sp - 1), tonumber(string.sub(prev, sp + 1)), now}
  end
end
local g = redis.call('GET', KEYS[4]) or '0'
local e = redis.call('HGET', KEYS[1], 'e')
if e and redis.call('HGET', KEYS[1], 'g') ~= g then e = false end
if not e then
  e = ARGV[5]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', e, 'o', 0, 'g', g)
end
local o = redis.call('HINCRBY', KEYS[1], 'o', 1)
local hs = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
if hs > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', hs, o .. '-0', 't', now, 'd', ARGV[1])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) else redis.call('PERSIST', KEYS[2]) end
end
if hs > 0 and ttl == 0 then
  redis.call('PERSIST', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], math.max(ttl, tonumber(ARGV[7])))
end
if ARGV[8] == '1' then
  redis.call('SET', KEYS[3], e .. ' ' .. o, 'PX', ARGV[4])
end
redis.call('PUBLISH', ARGV[6], 'm' .. e .. '\n' .. o .. '\n' .. now .. '\n' .. ARGV[1])
return {1, e, o, now}
)lua";

// KEYS: meta, history, boot generation. ARGV: new epoch, since epoch ('' = none), since offset,
// limit (0 = all), create ('1': make the stream if missing), idle ttl ms, newest ('1': without
// since, the newest `limit` entries). Returns {epoch, offset, ms, entries} (entries as XRANGE gives
// them, oldest first; newest mode: newest first). A missing stream without create: {'', 0, ms, {}}.
inline constexpr std::string_view kSnapshot = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local g = redis.call('GET', KEYS[3]) or '0'
local e = redis.call('HGET', KEYS[1], 'e')
if e and redis.call('HGET', KEYS[1], 'g') ~= g then e = false end
if not e then
  if ARGV[5] ~= '1' then return {'', 0, now, {}} end
  e = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', e, 'o', 0, 'g', g)
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
end
local o = tonumber(redis.call('HGET', KEYS[1], 'o'))
local entries = {}
local limit = tonumber(ARGV[4])
if ARGV[2] ~= '' then
  if ARGV[2] == e and tonumber(ARGV[3]) < o then
    if limit > 0 then
      entries = redis.call('XRANGE', KEYS[2], '(' .. ARGV[3] .. '-0', '+', 'COUNT', limit)
    else
      entries = redis.call('XRANGE', KEYS[2], '(' .. ARGV[3] .. '-0', '+')
    end
  end
elseif ARGV[7] == '1' then
  if limit > 0 then
    entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', limit)
  else
    entries = redis.call('XREVRANGE', KEYS[2], '+', '-')
  end
end
return {e, o, now, entries}
)lua";

// KEYS: presence hash, the node's presence set. ARGV: client id, value, pub/sub channel, set
// member, hash ttl ms. A new entry whose value starts with '1' (join_leave) is announced.
inline constexpr std::string_view kPresenceAdd = R"lua(
local isnew = redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('SADD', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
if isnew == 1 and string.sub(ARGV[2], 1, 1) == '1' then
  redis.call('PUBLISH', ARGV[3], 'j' .. ARGV[2])
end
return isnew
)lua";

// KEYS: presence hash, the node's presence set. ARGV: client id, pub/sub channel, set member.
inline constexpr std::string_view kPresenceRemove = R"lua(
local v = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[3])
if not v then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
if string.sub(v, 1, 1) == '1' then
  redis.call('PUBLISH', ARGV[2], 'l' .. v)
end
return 1
)lua";

// KEYS: nodes zset, this node's hash. ARGV: node id, name, connections, node ttl ms, prefix.
// Returns {ms, was_registered (0/1), dead ids, {id, last ms, name, connections}...}.
inline constexpr std::string_view kHeartbeat = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[4])
local known = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('HSET', KEYS[2], 'name', ARGV[2], 'connections', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ttl * 3)
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - ttl))
local live = redis.call('ZRANGEBYSCORE', KEYS[1], now - ttl, '+inf', 'WITHSCORES')
local nodes = {}
for i = 1, #live, 2 do
  local h = redis.call('HMGET', ARGV[5] .. 'node:' .. live[i], 'name', 'connections')
  table.insert(nodes, {live[i], tonumber(live[i + 1]), h[1] or '', tonumber(h[2] or '0')})
end
return {now, known and 1 or 0, dead, nodes}
)lua";

// KEYS: nodes zset. ARGV: dead node id, prefix, node ttl ms. Removes the node's presence
// entries (announcing leaves) unless it came back meanwhile; only one node wins the race.
inline constexpr std::string_view kReap = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) >= now - tonumber(ARGV[3]) then return -1 end
local setkey = ARGV[2] .. 'node:' .. ARGV[1] .. ':presence'
local members = redis.call('SMEMBERS', setkey)
for _, m in ipairs(members) do
  local nl = string.find(m, '\n', 1, true)
  if nl then
    local ch = string.sub(m, 1, nl - 1)
    local cid = string.sub(m, nl + 1)
    local hkey = ARGV[2] .. '{' .. ch .. '}.p'
    local v = redis.call('HGET', hkey, cid)
    if v then
      redis.call('HDEL', hkey, cid)
      if string.sub(v, 1, 1) == '1' then
        redis.call('PUBLISH', ARGV[2] .. '{' .. ch .. '}', 'l' .. v)
      end
    end
  end
end
redis.call('DEL', setkey)
redis.call('DEL', ARGV[2] .. 'node:' .. ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
return #members
)lua";

// KEYS: session hash. ARGV: holder, take ('1'/'0'), ttl ms, owner, then field/value pairs.
// Without take, a session another holder has taken is left alone (returns 0).
inline constexpr std::string_view kSaveSession = R"lua(
local cur = redis.call('HGET', KEYS[1], 'holder')
if ARGV[2] ~= '1' and cur and cur ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'owner', ARGV[4])
for i = 5, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
)lua";

// KEYS: boot key, boot generation. ARGV: the server's run_id (INFO server), new on every
// start. A Redis that restarted — empty, or from an RDB/AOF that may be older than what nodes
// were told — moves the generation on, so every stream gets a new epoch at its next use
// instead of handing out offsets it already gave (the first node back does it once).
// Returns the generation.
inline constexpr std::string_view kBoot = R"lua(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('INCR', KEYS[2])
end
return tonumber(redis.call('GET', KEYS[2]) or '0')
)lua";

}  // namespace sb::engines::redis::scripts
