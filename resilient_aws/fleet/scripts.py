"""The store's operations as Redis Lua scripts: each one step, atomic, timed by Redis's own clock.

Why scripts: "claim the probe lease if nobody holds it" or "count this failure and open the fleet's
breaker if the window says so" must not interleave with another process doing the same. A script
runs alone on the server, in one round trip; ``TIME`` inside it gives every process the same clock.

Every script tolerates garbage in the keys it reads (a field that is not a number counts as 0, an
unknown state is passed back for the client to refuse): a corrupt key must not raise an error
that the client would mistake for Redis being down. The replies are checked again by the client
(``store.view_from``). Keys of one endpoint share the hash tag ``{endpoint}``, so a cluster would
keep them on one node. :class:`~resilient_aws.fleet.store.MemoryStore` is the same contract in Python.
"""

from __future__ import annotations

from .store import PACE_AT, REPORT_RATE

#: A breaker record is kept a day after its last write (a fleet that went away leaves nothing behind).
RECORD_TTL_MS = 86_400_000

_PRELUDE = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function view(b, now)
  local r = redis.call('HMGET', b, 'st', 'until', 'h')
  if not r[1] then return {'closed', 0, ''} end
  local rem = (tonumber(r[2]) or 0) - now
  if rem < 0 then rem = 0 end
  return {r[1], rem, r[3] or ''}
end
local function emit(ns, channel, e, v)
  redis.call('PUBLISH', channel, cjson.encode({ns=ns, e=e, st=v[1], rem=v[2], h=v[3]}))
end
local function put(b, st, u, h)
  redis.call('HSET', b, 'st', st, 'until', u, 'h', h)
  redis.call('PEXPIRE', b, RECORD_TTL_MS)
end
-- a breaker record changes: write it, publish it (ARGV: ns, endpoint, channel first), reply with it
local function change(b, st, u, h, now)
  put(b, st, u, h)
  local v = view(b, now)
  emit(ARGV[1], ARGV[3], ARGV[2], v)
  return v
end
""".replace("RECORD_TTL_MS", str(RECORD_TTL_MS))

# KEYS: record, window. ARGV: ns, endpoint, channel, owner, successes, failures, min_calls, ratio,
# window_ms, open_ms. Reply: {view, reports this second}
REPORT = (_PRELUDE + """
local now = now_ms()
local sec = math.floor(now / 1000)
local seen, first = 0, now
local rs = redis.call('HMGET', KEYS[2], 'rs', 'rn', 'rf')
if tonumber(rs[1]) == sec then
  seen = tonumber(rs[2]) or 0
  first = tonumber(rs[3]) or now
end
seen = seen + 1
redis.call('HSET', KEYS[2], 'rs', sec, 'rn', seen, 'rf', first)
if seen == PACE_AT then
  local pace = math.min(60000, math.ceil(PACE_AT / math.max(now - first, 1) * 1000 / REPORT_RATE * 1000))
  redis.call('PUBLISH', ARGV[3], cjson.encode({ns=ARGV[1], e=ARGV[2], k='pace', w=pace}))
end
local window = tonumber(ARGV[9])
local width = math.max(1, math.floor(window / 10))
local cur = math.floor(now / width)
local s_new, f_new = tonumber(ARGV[5]), tonumber(ARGV[6])
local function add(field, n)
  if n > 0 then
    local r = redis.pcall('HINCRBY', KEYS[2], field, n)
    if type(r) == 'table' and r.err then redis.call('HSET', KEYS[2], field, n) end  -- a corrupt count restarts
  end
end
add('s:' .. cur, s_new)
add('f:' .. cur, f_new)
redis.call('PEXPIRE', KEYS[2], window)
local all = redis.call('HGETALL', KEYS[2])
local ok, bad = 0, 0
for i = 1, #all, 2 do
  local kind = string.sub(all[i], 1, 2)
  if kind == 's:' or kind == 'f:' then
    local bucket = tonumber(string.sub(all[i], 3))
    local n = tonumber(all[i + 1]) or 0
    if bucket == nil or bucket <= cur - 10 then
      redis.call('HDEL', KEYS[2], all[i])
    elseif kind == 's:' then ok = ok + n else bad = bad + n end
  end
end
if redis.call('EXISTS', KEYS[1]) == 0 and bad >= tonumber(ARGV[7]) and bad >= tonumber(ARGV[8]) * (ok + bad) then
  return {change(KEYS[1], 'open', now + tonumber(ARGV[10]), '', now), seen}
end
return {view(KEYS[1], now), seen}
""").replace("PACE_AT", str(PACE_AT)).replace("REPORT_RATE", repr(REPORT_RATE))

# KEYS: record. ARGV: ns, endpoint, channel, owner, open_ms
OPEN = _PRELUDE + """
local now = now_ms()
if redis.call('EXISTS', KEYS[1]) == 0 then return change(KEYS[1], 'open', now + tonumber(ARGV[5]), '', now) end
return view(KEYS[1], now)
"""

# KEYS: record. ARGV: ns, endpoint, channel, owner, lease_ms. Reply: {granted, view}. With no record the
# fleet is closed (a process still open missed the closing, or Redis restarted before the processes re-published
# their openings): granted, but nothing is written or published, so one late process cannot re-open the fleet.
CLAIM = _PRELUDE + """
local now = now_ms()
local r = redis.call('HMGET', KEYS[1], 'st', 'until')
if not r[1] then return {1, {'closed', 0, ''}} end  -- the fleet is closed: probe alone, tell nobody
if now < (tonumber(r[2]) or 0) then return {0, view(KEYS[1], now)} end
return {1, change(KEYS[1], 'probing', now + tonumber(ARGV[5]), ARGV[4], now)}
"""

# KEYS: record, window. ARGV: ns, endpoint, channel, owner, ok (1/0), open_ms
PROBE_DONE = _PRELUDE + """
local now = now_ms()
if redis.call('HGET', KEYS[1], 'h') ~= ARGV[4] then return view(KEYS[1], now) end
if ARGV[5] == '1' then
  redis.call('DEL', KEYS[1], KEYS[2])
  local v = {'closed', 0, ''}
  emit(ARGV[1], ARGV[3], ARGV[2], v)
  return v
end
return change(KEYS[1], 'open', now + tonumber(ARGV[6]), '', now)
"""

# KEYS: record. ARGV: ns, endpoint, channel, owner
RELEASE = _PRELUDE + """
local now = now_ms()
if redis.call('HGET', KEYS[1], 'h') == ARGV[4] then return change(KEYS[1], 'open', now, '', now) end
return view(KEYS[1], now)
"""

# KEYS: record. Reply: the view, or nil when there is no record
READ = _PRELUDE + """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
return view(KEYS[1], now_ms())
"""

# KEYS: reserve. ARGV: rate (tokens/s), capacity, ask_rate, keep_ms, ns, endpoint, channel.
# Reply: {granted, wait_ms}. The first denial of an empty period is published with the time the bucket
# takes to fill again, so the fleet waits without asking (a fleet's floor is a trickle: asking sooner
# would only add load).
RESERVE = _PRELUDE + """
local now = now_ms()
local rate, cap = tonumber(ARGV[1]), tonumber(ARGV[2])
local r = redis.call('HMGET', KEYS[1], 't', 'at', 'ds', 'dn')
local tokens = tonumber(r[1]) or cap
local at = tonumber(r[2]) or now
if tokens ~= tokens or tokens < 0 then tokens = 0 end
if at > now then at = now end
tokens = math.min(cap, tokens + (now - at) / 1000 * rate)
if tokens >= 1 then
  redis.call('HSET', KEYS[1], 't', tostring(tokens - 1), 'at', now)
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return {1, 0}
end
local sec = math.floor(now / 1000)
local dn = 0
if tonumber(r[3]) == sec then dn = tonumber(r[4]) or 0 end
dn = dn + 1
local wait = 1000
if rate > 0 then wait = (1 - tokens) / rate * 1000 end
wait = math.ceil(math.max(wait, dn / tonumber(ARGV[3]) * 1000))
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'at', now, 'ds', sec, 'dn', dn)
if now >= (tonumber(redis.call('HGET', KEYS[1], 'told')) or 0) then
  local told = 1000
  if rate > 0 then told = cap / rate * 1000 end
  told = math.ceil(math.max(wait, told))
  redis.call('HSET', KEYS[1], 'told', now + told)
  redis.call('PUBLISH', ARGV[7], cjson.encode({ns=ARGV[5], e=ARGV[6], k='floor', w=told}))
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {0, wait}
"""

# KEYS: dns entry. ARGV: entry (JSON), keep_ms
DNS_PUT = _PRELUDE + """
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'at', now_ms())
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS: dns entry. Reply: {entry, age_ms} or nil
DNS_GET = _PRELUDE + """
local r = redis.call('HMGET', KEYS[1], 'v', 'at')
if not r[1] then return false end
return {r[1], now_ms() - (tonumber(r[2]) or 0)}
"""
