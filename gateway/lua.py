"""Lua scripts for the live state: every multi-key update is one atomic script.

Common ARGV head (see `live.common_args`): GEO prefix, H3 prefix, events stream,
stream MAXLEN, dirty set, ids set. Scripts touch keys derived from the hash
(specialty GEO set, H3 bucket), so they pass prefixes rather than KEYS; the
deployment is a single Redis (not Cluster), where that is allowed.
"""

from __future__ import annotations

_PRELUDE = r"""
local GEO_P, H3_P, STREAM, MAXLEN, DIRTY, IDS = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local FIELDS = {'lat', 'lon', 'ts', 'h3', 'current_status', 'specialty', 'level', 'rating', 'verified', 'avail'}
local function load(key)
  local v = redis.call('HMGET', key, unpack(FIELDS))
  local h = {}
  for i, f in ipairs(FIELDS) do if v[i] then h[f] = v[i] end end
  return h
end
local function unplace(id, spec, cell)
  if spec then redis.call('ZREM', GEO_P .. spec, id) end
  if cell then redis.call('SREM', H3_P .. cell, id) end
end
-- GEO and H3 membership follow current_status: only ONLINE artisans are in them.
local function place(id, h)
  local lat = tonumber(h.lat or '')
  if h.current_status == 'ONLINE' and lat and h.specialty and math.abs(lat) < 85.05 then
    redis.call('GEOADD', GEO_P .. h.specialty, h.lon, h.lat, id)
    if h.h3 then redis.call('SADD', H3_P .. h.h3, id) end
  else
    unplace(id, h.specialty, h.h3)
  end
end
-- Every change becomes a full snapshot on the stream, so a mirror needs no other read.
local function emit(id, h, kind)
  redis.call('XADD', STREAM, 'MAXLEN', '~', MAXLEN, '*', 'k', kind, 'id', id,
    'st', h.current_status or 'OFFLINE', 'lat', h.lat or '', 'lon', h.lon or '',
    'sp', h.specialty or '', 'lv', h.level or '', 'rt', h.rating or '', 'ts', h.ts or '')
  redis.call('SADD', DIRTY, id)
end
"""

# ARGV[7] = n, then per fix: id, lat, lon, ts, cell, heading, hash key, tracking key.
# Returns one entry per fix of a tracked artisan: {id, intervention, client, job_lat,
# job_lon, lat, lon, ts, heading}.
APPLY_FIXES = (
    _PRELUDE
    + r"""
local out = {}
local n = tonumber(ARGV[7])
for i = 0, n - 1 do
  local o = 8 + i * 8
  local id, lat, lon, ts, cell, heading, hkey, tkey =
    ARGV[o], ARGV[o + 1], ARGV[o + 2], ARGV[o + 3], ARGV[o + 4], ARGV[o + 5], ARGV[o + 6], ARGV[o + 7]
  local h = load(hkey)
  -- Another socket (or process) may already have stored a newer fix.
  if (not h.ts) or tonumber(ts) >= tonumber(h.ts) then
    local status = h.current_status or 'OFFLINE'
    if status ~= 'BUSY' then
      if h.verified == '1' and h.avail ~= '0' and h.specialty then status = 'ONLINE' else status = 'OFFLINE' end
    end
    if h.h3 and h.h3 ~= cell then redis.call('SREM', H3_P .. h.h3, id) end
    h.lat, h.lon, h.ts, h.h3, h.current_status = lat, lon, ts, cell, status
    redis.call('HSET', hkey, 'lat', lat, 'lon', lon, 'ts', ts, 'h3', cell, 'current_status', status)
    place(id, h)
    redis.call('SADD', IDS, id)
    emit(id, h, 'fix')
    local t = redis.call('HMGET', tkey, 'intervention_id', 'client_id', 'job_lat', 'job_lon')
    if t[1] and t[2] then
      table.insert(out, {id, t[1], t[2], t[3] or '', t[4] or '', lat, lon, ts, heading})
    end
  end
end
return out
"""
)

# ARGV[7..] = id, hash key, specialty, level, rating, verified ('1'|'0').
# A (re)connecting artisan: profile from PostgreSQL, availability reset to wanted.
# Returns {lat, lon, ts, current_status} (false for missing values).
CONNECT = (
    _PRELUDE
    + r"""
local id, hkey = ARGV[7], ARGV[8]
local h = load(hkey)
if h.specialty and h.specialty ~= ARGV[9] then redis.call('ZREM', GEO_P .. h.specialty, id) end
h.specialty, h.level, h.rating, h.verified, h.avail = ARGV[9], ARGV[10], ARGV[11], ARGV[12], '1'
local status = h.current_status or 'OFFLINE'
if h.verified ~= '1' then status = 'OFFLINE' end
h.current_status = status
redis.call('HSET', hkey, 'specialty', h.specialty, 'level', h.level, 'rating', h.rating,
  'verified', h.verified, 'avail', '1', 'current_status', status)
place(id, h)
redis.call('SADD', IDS, id)
emit(id, h, 'profile')
return {h.lat or false, h.lon or false, h.ts or false, status}
"""
)

# ARGV[7..] = id, hash key, wanted ('ONLINE'|'OFFLINE'), now ms, recent-fix ms.
# Returns the effective current_status.
PRESENCE = (
    _PRELUDE
    + r"""
local id, hkey, wanted, now, recent = ARGV[7], ARGV[8], ARGV[9], tonumber(ARGV[10]), tonumber(ARGV[11])
local h = load(hkey)
local status = h.current_status or 'OFFLINE'
if wanted == 'OFFLINE' then
  h.avail = '0'
  if status ~= 'BUSY' then status = 'OFFLINE' end
else
  h.avail = '1'
  local fresh = h.ts and (now - tonumber(h.ts)) <= recent
  if status ~= 'BUSY' and h.verified == '1' and h.specialty and fresh then status = 'ONLINE' end
end
h.current_status = status
redis.call('HSET', hkey, 'avail', h.avail, 'current_status', status)
place(id, h)
redis.call('SADD', IDS, id)
emit(id, h, 'status')
return status
"""
)

# ARGV[7..] = id, hash key. Dispatch: the artisan accepted a job.
SET_BUSY = (
    _PRELUDE
    + r"""
local id, hkey = ARGV[7], ARGV[8]
local h = load(hkey)
h.current_status = 'BUSY'
redis.call('HSET', hkey, 'current_status', 'BUSY')
place(id, h)
redis.call('SADD', IDS, id)
emit(id, h, 'status')
return 'BUSY'
"""
)

# ARGV[7..] = id, hash key, user->nodes key, now ms, recent-fix ms.
# The job ended: ONLINE if they still have a socket or a recent fix (and want work).
SET_AVAILABLE = (
    _PRELUDE
    + r"""
local id, hkey, unkey, now, recent = ARGV[7], ARGV[8], ARGV[9], tonumber(ARGV[10]), tonumber(ARGV[11])
if redis.call('EXISTS', hkey) == 0 then return 'OFFLINE' end
local h = load(hkey)
local connected = redis.call('ZCOUNT', unkey, '(' .. now, '+inf') > 0
local fresh = h.ts and (now - tonumber(h.ts)) <= recent
local status = 'OFFLINE'
if h.verified == '1' and h.avail ~= '0' and h.lat and h.specialty and (connected or fresh) then
  status = 'ONLINE'
end
h.current_status = status
redis.call('HSET', hkey, 'current_status', status)
place(id, h)
emit(id, h, 'status')
return status
"""
)

# ARGV[7..] = id, hash key, then field/value pairs among specialty, level, rating, verified.
# No-op (returns 0) for an artisan without live state: the next connect reads PostgreSQL.
UPDATE_PROFILE = (
    _PRELUDE
    + r"""
local id, hkey = ARGV[7], ARGV[8]
if redis.call('EXISTS', hkey) == 0 then return 0 end
local h = load(hkey)
for i = 9, #ARGV, 2 do
  local f, v = ARGV[i], ARGV[i + 1]
  if f == 'specialty' and h.specialty and h.specialty ~= v then
    redis.call('ZREM', GEO_P .. h.specialty, id)
  end
  h[f] = v
  redis.call('HSET', hkey, f, v)
end
if h.verified ~= '1' then
  h.current_status = 'OFFLINE'
  redis.call('HSET', hkey, 'current_status', 'OFFLINE')
end
place(id, h)
emit(id, h, 'profile')
return 1
"""
)

# ARGV[7..] = id, hash key, leases key, now ms. The sweeper: a lease ran out.
EXPIRE_LEASE = (
    _PRELUDE
    + r"""
local id, hkey, leases, now = ARGV[7], ARGV[8], ARGV[9], tonumber(ARGV[10])
local score = redis.call('ZSCORE', leases, id)
if (not score) or tonumber(score) > now then return 0 end
redis.call('ZREM', leases, id)
local h = load(hkey)
if h.current_status == 'ONLINE' then
  h.current_status = 'OFFLINE'
  redis.call('HSET', hkey, 'current_status', 'OFFLINE')
  place(id, h)
  emit(id, h, 'status')
  return 1
end
return 0
"""
)

# KEYS: user->nodes key, leases key. ARGV: node, id, now ms, grace ms, is_artisan.
# The last socket of a user on this node closed.
DISCONNECT = r"""
redis.call('ZREM', KEYS[1], ARGV[1])
local now = tonumber(ARGV[3])
if ARGV[5] == '1' and redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf') == 0 then
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[2])
end
return 1
"""

# KEYS: user->nodes key. ARGV: now ms, this node, channel prefix, payload.
# Publish a frame to every other node holding a socket of the user.
PUBLISH_TO_USER = r"""
local nodes = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')
local sent = 0
for _, node in ipairs(nodes) do
  if node ~= ARGV[2] then
    redis.call('PUBLISH', ARGV[3] .. node, ARGV[4])
    sent = sent + 1
  end
end
return sent
"""
