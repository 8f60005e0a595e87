"""Lua scripts for the live state: every multi-key update is one atomic script.

Common ARGV head (see `live.common_args`): GEO prefix, H3 prefix, events stream,
stream retention (ms), dirty set, ids set, fresh set. Scripts touch keys derived from
the hash (specialty GEO set, H3 bucket), so they pass prefixes rather than KEYS; the
deployment is a single Redis (not Cluster), where that is allowed.

Batch inputs and outputs are packed strings (rows separated by a newline, fields by "|"):
one bulk string costs redis-py a fraction of what thousands of separate arguments or
reply elements cost, and Redis parses one argument instead of thousands. Ids are UUIDs and the
other fields numbers, enums or H3 hex, so neither separator can occur in a field.
"""

from __future__ import annotations

# Job-status changes carry the artisan's live version (PostgreSQL's `live_version`): the
# hash keeps the highest applied ('lv'), and a change older than it is stale and ignored.
# Version 0 is unversioned: it always applies and leaves 'lv' as it is.
_STALE = r"""
local function stale(hkey, ver)
  if ver == '0' then return false end
  local lv = tonumber(redis.call('HGET', hkey, 'lv') or '0') or 0
  if tonumber(ver) < lv then return true end
  if tonumber(ver) > lv then redis.call('HSET', hkey, 'lv', ver) end
  return false
end
"""

_PRELUDE = (
    r"""
local GEO_P, H3_P, STREAM, RETAIN_MS, DIRTY, IDS, FRESH =
  ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7]
local FIELDS = {'lat', 'lon', 'ts', 'h3', 'current_status', 'specialty', 'level', 'rating', 'verified',
  'avail', 'trk'}
local function load(key)
  local v = redis.call('HMGET', key, unpack(FIELDS))
  local h = {}
  for i, f in ipairs(FIELDS) do if v[i] then h[f] = v[i] end end
  return h
end
local function unplace(id, spec, cell)
  if spec then redis.call('ZREM', GEO_P .. spec, id) end
  if cell then redis.call('SREM', H3_P .. cell, id) end
  redis.call('ZREM', FRESH, id)
end
-- GEO and H3 membership follow current_status: only ONLINE artisans are in them. FRESH
-- holds their last fix time, so the stale sweep finds those whose fixes stopped.
local function place(id, h)
  local lat = tonumber(h.lat or '')
  if h.current_status == 'ONLINE' and lat and h.specialty and math.abs(lat) < 85.05 then
    redis.call('GEOADD', GEO_P .. h.specialty, h.lon, h.lat, id)
    if h.h3 then redis.call('SADD', H3_P .. h.h3, id) end
    redis.call('ZADD', FRESH, tonumber(h.ts or '0') or 0, id)
  else
    unplace(id, h.specialty, h.h3)
  end
end
-- Every change becomes a full snapshot row on the stream, so a mirror needs no other
-- read (a fix only when it moves PostgreSQL's copy: see APPLY_FIXES). Rows:
-- id|status|lat|lon|specialty|level|rating|ts. One XADD per script call (a fix batch is
-- one entry), trimmed to the last RETAIN_MS milliseconds.
local EVENTS = {}
local function row(id, h)
  EVENTS[#EVENTS + 1] = table.concat({id, h.current_status or 'OFFLINE', h.lat or '', h.lon or '',
    h.specialty or '', h.level or '', h.rating or '', h.ts or ''}, '|')
end
-- A change for the stream and for the write-behind (a status change always reaches
-- PostgreSQL).
local function emit(id, h)
  row(id, h)
  redis.call('SADD', DIRTY, id)
end
"""
    + _STALE
    + r"""
local function publish(kind)
  if #EVENTS == 0 then return end
  local t = redis.call('TIME')
  local minid = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - RETAIN_MS
  redis.call('XADD', STREAM, 'MINID', '~', minid, '*', 'k', kind, 'd', table.concat(EVENTS, '\n'))
  EVENTS = {}
end
"""
)

# ARGV[8..] = live hash prefix, tracking prefix, then the batch: rows
# "id|lat|lon|ts|cell|heading|moved\n". Returns one entry per fix of a tracked artisan:
# {id, intervention, client, job_lat, job_lon, lat, lon, ts, heading}.
# A fix is the hot path (thousands a second), so it does only what changed: the H3
# bucket when the cell or the status changed, the ids set for a first fix, the
# freshness index when a fix starts a new minute, the tracking record only for a
# tracked artisan ('trk' in the hash). The hash and tracking always get the fix. The
# rest follows PostgreSQL's copy: a fix that would rewrite it (the gateway's
# FixValidator.moved flags the first fix of a socket and those 25 m or 60 s from the
# last flagged one: the rule of gateway/repo.py; or a status other than the one handed
# to the write-behind, 'w', written by POP_DIRTY) joins the write-behind's dirty set,
# becomes a stream row for the index mirrors and the ops feed, and moves the artisan in
# the GEO set. An artisan waiting in place (most of the fleet, pinging every few
# seconds) thus costs each mirror nothing per fix, and the index and the GEO set are as
# close to the fix as PostgreSQL is (25 m, 60 s); the hash has the exact last fix.
# Redis's own work per fix is a reply per field read, a call per command (each call
# costs about half a GEOADD) and the script's own string work (parsing a number costs
# about as much as reading a field, so the distance is the gateway's, which parsed the
# fix already): an artisan waiting in place costs HMGET of five fields and HSET of the
# position. The profile (specialty, level, rating) is read only when a row is written
# or the GEO set changes, and 'verified' and 'avail' only for an artisan neither ONLINE
# nor BUSY (every script that changes either keeps ONLINE to verified, available
# artisans with a specialty).
APPLY_FIXES = (
    _PRELUDE
    + r"""
local LIVE_P, TRK_P = ARGV[8], ARGV[9]
-- The freshness index moves once a minute per artisan: half the stale sweep's 2 minutes
-- (RECENT_FIX_S), so a live artisan's score never falls behind the sweep's cutoff, and the
-- sweep checks the hash's exact 'ts' before it expires anyone.
local FRESH_STEP_MS = 60000
local ABS, FLOOR, TONUM, CALL = math.abs, math.floor, tonumber, redis.call
local out = {}
local n = 0
for id, lat, lon, ts, cell, heading, moved in string.gmatch(ARGV[10],
    '([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^\n]*)\n') do
  local hkey = LIVE_P .. id
  local v = CALL('HMGET', hkey, 'ts', 'h3', 'current_status', 'trk', 'w')
  local nts = TONUM(ts)
  local old_ts = v[1] and TONUM(v[1])
  -- Another socket (or process) may already have stored a newer fix.
  if (not old_ts) or nts >= old_ts then
    local old_cell, was = v[2], v[3]
    local status = was or 'OFFLINE'
    -- The profile (specialty, level, rating) only when something beyond the position
    -- changes: a stream row, a (re)placement in the GEO set.
    local prof
    if status ~= 'BUSY' and status ~= 'ONLINE' then
      prof = CALL('HMGET', hkey, 'specialty', 'level', 'rating', 'verified', 'avail')
      if prof[4] == '1' and prof[5] ~= '0' and prof[1] then status = 'ONLINE' else status = 'OFFLINE' end
    end
    if old_cell == cell and was == status then
      CALL('HSET', hkey, 'lat', lat, 'lon', lon, 'ts', ts)
    else
      CALL('HSET', hkey, 'lat', lat, 'lon', lon, 'ts', ts, 'h3', cell, 'current_status', status)
    end
    local flat = TONUM(lat)
    local due = moved == '1' or v[5] ~= status
    if not prof and (due or was ~= status or not old_ts) then
      prof = CALL('HMGET', hkey, 'specialty', 'level', 'rating')
    end
    if status == 'ONLINE' and flat and ABS(flat) < 85.05 then
      if prof and prof[1] then CALL('GEOADD', GEO_P .. prof[1], lon, lat, id) end
      if old_cell ~= cell or was ~= 'ONLINE' then
        if old_cell and old_cell ~= cell then CALL('SREM', H3_P .. old_cell, id) end
        CALL('SADD', H3_P .. cell, id)
      end
      if was ~= 'ONLINE' or not old_ts or FLOOR(nts / FRESH_STEP_MS) ~= FLOOR(old_ts / FRESH_STEP_MS) then
        CALL('ZADD', FRESH, nts, id)
      end
    elseif was == 'ONLINE' or not old_ts then
      unplace(id, (prof or CALL('HMGET', hkey, 'specialty'))[1], old_cell)
    elseif old_cell and old_cell ~= cell then
      CALL('SREM', H3_P .. old_cell, id)
    end
    if not old_ts then CALL('SADD', IDS, id) end
    if due then
      CALL('SADD', DIRTY, id)
      n = n + 1
      EVENTS[n] = id .. '|' .. status .. '|' .. lat .. '|' .. lon .. '|' .. (prof[1] or '') .. '|' ..
        (prof[2] or '') .. '|' .. (prof[3] or '') .. '|' .. ts
    end
    if v[4] == '1' then
      local t = CALL('HMGET', TRK_P .. id, 'intervention_id', 'client_id', 'job_lat', 'job_lon')
      if t[1] and t[2] then
        out[#out + 1] = {id, t[1], t[2], t[3] or '', t[4] or '', lat, lon, ts, heading}
      end
    end
  end
end
publish('fix')
return out
"""
)

# ARGV[8..] = id, hash key, specialty, level, rating, verified ('1'|'0').
# A (re)connecting artisan: profile from PostgreSQL, availability reset to wanted.
# Returns {lat, lon, ts, current_status} (false for missing values).
CONNECT = (
    _PRELUDE
    + r"""
local id, hkey = ARGV[8], ARGV[9]
local h = load(hkey)
if h.specialty and h.specialty ~= ARGV[10] then redis.call('ZREM', GEO_P .. h.specialty, id) end
h.specialty, h.level, h.rating, h.verified, h.avail = ARGV[10], ARGV[11], ARGV[12], ARGV[13], '1'
local status = h.current_status or 'OFFLINE'
if h.verified ~= '1' then status = 'OFFLINE' end
h.current_status = status
redis.call('HSET', hkey, 'specialty', h.specialty, 'level', h.level, 'rating', h.rating,
  'verified', h.verified, 'avail', '1', 'current_status', status)
place(id, h)
redis.call('SADD', IDS, id)
emit(id, h)
publish('profile')
return {h.lat or false, h.lon or false, h.ts or false, status}
"""
)

# ARGV[8..] = id, hash key, wanted ('ONLINE'|'OFFLINE'), now ms, recent-fix ms.
# Returns the effective current_status.
PRESENCE = (
    _PRELUDE
    + r"""
local id, hkey, wanted, now, recent = ARGV[8], ARGV[9], ARGV[10], tonumber(ARGV[11]), tonumber(ARGV[12])
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
emit(id, h)
publish('status')
return status
"""
)

# ARGV[8..] = id, hash key, version, jobs set. Dispatch: the artisan accepted a job.
# Returns false when a newer change was applied already.
SET_BUSY = (
    _PRELUDE
    + r"""
local id, hkey = ARGV[8], ARGV[9]
if stale(hkey, ARGV[10]) then return false end
local h = load(hkey)
h.current_status = 'BUSY'
redis.call('HSET', hkey, 'current_status', 'BUSY')
redis.call('SADD', ARGV[11], id)
place(id, h)
redis.call('SADD', IDS, id)
emit(id, h)
publish('status')
return 'BUSY'
"""
)

# ARGV[8..] = id, hash key, now ms, recent-fix ms, version.
# The job ended: ONLINE if they have a recent fix (and are verified and want work).
# Returns the new status, or false when a newer change was applied already. Without a
# live hash only the version is kept (a late older BUSY then stays out).
SET_AVAILABLE = (
    _PRELUDE
    + r"""
local id, hkey, now, recent = ARGV[8], ARGV[9], tonumber(ARGV[10]), tonumber(ARGV[11])
local exists = redis.call('EXISTS', hkey) == 1
if stale(hkey, ARGV[12]) then return false end
if not exists then return 'OFFLINE' end
local h = load(hkey)
local fresh = h.ts and (now - tonumber(h.ts)) <= recent
local status = 'OFFLINE'
if h.verified == '1' and h.avail ~= '0' and h.lat and h.specialty and fresh then
  status = 'ONLINE'
end
h.current_status = status
redis.call('HSET', hkey, 'current_status', status)
place(id, h)
emit(id, h)
publish('status')
return status
"""
)

# ARGV: hash key, tracking key, version, intervention, client, job lat, job lon, ttl s,
# jobs set, artisan id. Forward the artisan's fixes to the client (the fix script reads
# the record only for an artisan flagged 'trk'). Returns 0 when a newer change was
# applied already.
TRACK_START = (
    r"""
local hkey, tkey, ver = ARGV[1], ARGV[2], ARGV[3]
"""
    + _STALE
    + r"""
if stale(hkey, ver) then return 0 end
redis.call('HSET', tkey, 'intervention_id', ARGV[4], 'client_id', ARGV[5], 'job_lat', ARGV[6],
  'job_lon', ARGV[7])
redis.call('EXPIRE', tkey, tonumber(ARGV[8]))
redis.call('HSET', hkey, 'trk', '1')
redis.call('SADD', ARGV[9], ARGV[10])
return 1
"""
)

# ARGV: hash key, tracking key, version. Stop forwarding; 0 when a newer change won.
TRACK_STOP = (
    r"""
local hkey, tkey, ver = ARGV[1], ARGV[2], ARGV[3]
"""
    + _STALE
    + r"""
if stale(hkey, ver) then return 0 end
redis.call('DEL', tkey)
redis.call('HDEL', hkey, 'trk')
return 1
"""
)

# ARGV[8..] = id, hash key, then field/value pairs among specialty, level, rating, verified.
# No-op (returns 0) for an artisan without live state: the next connect reads PostgreSQL.
UPDATE_PROFILE = (
    _PRELUDE
    + r"""
local id, hkey = ARGV[8], ARGV[9]
if redis.call('EXISTS', hkey) == 0 then return 0 end
local h = load(hkey)
for i = 10, #ARGV, 2 do
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
emit(id, h)
publish('profile')
return 1
"""
)

# ARGV[8..] = leases key, live hash prefix, now ms, limit. The lease sweep: artisans whose
# presence lease ran out (no socket anywhere for the grace) go OFFLINE, at most `limit`
# per call, in one stream entry. Returns {leases ended, artisans that went OFFLINE}.
EXPIRE_LEASES = (
    _PRELUDE
    + r"""
local leases, LIVE_P, now, limit = ARGV[8], ARGV[9], tonumber(ARGV[10]), tonumber(ARGV[11])
local due = redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, limit)
local n = 0
for _, id in ipairs(due) do
  redis.call('ZREM', leases, id)
  local hkey = LIVE_P .. id
  local h = load(hkey)
  if h.current_status == 'ONLINE' then
    h.current_status = 'OFFLINE'
    redis.call('HSET', hkey, 'current_status', 'OFFLINE')
    place(id, h)
    emit(id, h)
    n = n + 1
  end
end
publish('status')
return {#due, n}
"""
)

# ARGV[8..] = live hash prefix, cutoff ms, limit. The stale sweep: ONLINE artisans whose
# last fix is at or before the cutoff go OFFLINE (until their next fix, which puts them
# back ONLINE). Returns how many went OFFLINE.
EXPIRE_STALE = (
    _PRELUDE
    + r"""
local LIVE_P, cutoff, limit = ARGV[8], tonumber(ARGV[9]), tonumber(ARGV[10])
local due = redis.call('ZRANGEBYSCORE', FRESH, '-inf', cutoff, 'LIMIT', 0, limit)
local n = 0
for _, id in ipairs(due) do
  local h = load(LIVE_P .. id)
  if h.current_status == 'ONLINE' and (tonumber(h.ts or '0') or 0) <= cutoff then
    h.current_status = 'OFFLINE'
    redis.call('HSET', LIVE_P .. id, 'current_status', 'OFFLINE')
    emit(id, h)
    n = n + 1
  end
  place(id, h)  -- OFFLINE (or BUSY): out of FRESH; ONLINE with a newer fix: score repaired
end
publish('status')
return n
"""
)

# ARGV: user->nodes prefix, leases key, node, now ms, grace ms, then rows "user|a\n"
# (a = 1 for an artisan). Users whose last socket on this node closed (batched by
# gateway/departures.py, or everyone at shutdown): the node leaves their entry, and an
# artisan no other node holds starts the offline grace.
DISCONNECT_MANY = r"""
local UN_P, leases, node, now, grace = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local n = 0
for uid, artisan in string.gmatch(ARGV[6], '([^|]*)|([^\n]*)\n') do
  local key = UN_P .. uid
  redis.call('ZREM', key, node)
  if artisan == '1' and redis.call('ZCOUNT', key, '(' .. now, '+inf') == 0 then
    redis.call('ZADD', leases, now + grace, uid)
  end
  n = n + 1
end
return n
"""

# ARGV: user->nodes prefix, leases key, node, now ms, registry ttl ms, lease ms, then rows
# "user|a\n" (a = 1 for an artisan). The registry refresh: this node holds these users'
# sockets for another TTL, and their presence leases move forward (never backwards).
ANNOUNCE = r"""
local UN_P, leases, node = ARGV[1], ARGV[2], ARGV[3]
local now, ttl, lease = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local n = 0
for uid, artisan in string.gmatch(ARGV[7], '([^|]*)|([^\n]*)\n') do
  local key = UN_P .. uid
  redis.call('ZADD', key, now + ttl, node)
  redis.call('PEXPIRE', key, ttl)
  if artisan == '1' then redis.call('ZADD', leases, 'GT', now + lease, uid) end
  n = n + 1
end
return n
"""

# KEYS: one user->nodes key per frame. ARGV: now ms, this node, channel prefix, then one
# payload per key. Publishes each frame to every other live node holding a socket of its
# user: the frames of one committed change cost one round trip, not one each.
PUBLISH_TO_USERS = r"""
local sent = 0
for i, key in ipairs(KEYS) do
  local nodes = redis.call('ZRANGEBYSCORE', key, '(' .. ARGV[1], '+inf')
  for _, node in ipairs(nodes) do
    if node ~= ARGV[2] then
      redis.call('PUBLISH', ARGV[3] .. node, ARGV[3 + i])
      sent = sent + 1
    end
  end
end
return sent
"""

# ARGV: dirty set, live hash prefix, limit. The write-behind: pops up to `limit` changed
# artisans and returns their rows "id|lat|lon|ts|status\n" as one string.
POP_DIRTY = r"""
local LIVE_P = ARGV[2]
local ids = redis.call('SPOP', ARGV[1], tonumber(ARGV[3]))
local rows = {}
for i, id in ipairs(ids) do
  local v = redis.call('HMGET', LIVE_P .. id, 'lat', 'lon', 'ts', 'current_status')
  rows[i] = table.concat({id, v[1] or '', v[2] or '', v[3] or '', v[4] or ''}, '|')
  -- The status PostgreSQL is handed: a fix with another marks the artisan dirty again.
  if v[1] and v[2] and v[3] then redis.call('HSET', LIVE_P .. id, 'w', v[4] or 'OFFLINE') end
end
if #rows == 0 then return '' end
return table.concat(rows, '\n') .. '\n'
"""

# ARGV: scanned set, live hash prefix, tracking prefix, SSCAN cursor, count, jobs set.
# The reconciler's view of Redis, one SSCAN page at a time: the artisans it says are BUSY
# or tracked. Scanning the ids set (every artisan), it adds them to the jobs set (which a
# hash changed outside these scripts may have missed); scanning the jobs set, it drops
# the others from it (atomically: only SET_BUSY and TRACK_START make an artisan BUSY or
# tracked, and both add it back). Returns {next cursor, rows "id|current_status|trk
# flag|tracked intervention\n"}.
SCAN_JOBS = r"""
local SCANNED, JOBS = ARGV[1], ARGV[6]
local page = redis.call('SSCAN', SCANNED, ARGV[4], 'COUNT', tonumber(ARGV[5]))
local rows = {}
for _, id in ipairs(page[2]) do
  local v = redis.call('HMGET', ARGV[2] .. id, 'current_status', 'trk')
  if v[1] == 'BUSY' or v[2] == '1' then
    local job = redis.call('HGET', ARGV[3] .. id, 'intervention_id') or ''
    rows[#rows + 1] = id .. '|' .. (v[1] or '') .. '|' .. (v[2] or '') .. '|' .. job .. '\n'
    if SCANNED ~= JOBS then redis.call('SADD', JOBS, id) end
  elseif SCANNED == JOBS then
    redis.call('SREM', JOBS, id)
  end
end
return {page[1], table.concat(rows)}
"""

# ARGV: key, node id, ttl ms. Leadership of a task shared by processes: taken when free,
# kept (and extended) by its holder. Returns 1 when this node leads.
LEAD = r"""
local holder = redis.call('GET', ARGV[1])
if holder == ARGV[2] then
  redis.call('PEXPIRE', ARGV[1], tonumber(ARGV[3]))
  return 1
end
if not holder then
  redis.call('SET', ARGV[1], ARGV[2], 'PX', tonumber(ARGV[3]))
  return 1
end
return 0
"""
