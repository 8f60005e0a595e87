"""OpenAPI fragment of the gateway: the `/ws` upgrade and the admin live view."""

from __future__ import annotations

from typing import Any

from core.openapi import BEARER, UUID, json_ok, problems, ref

_WS_DESCRIPTION = """\
WebSocket endpoint (CONTRACT §5). Authenticate with `Authorization: Bearer <access>`
on the handshake, or with a first text frame `{"type":"auth","token":"..."}` within
5 s (else close 4401). A later `auth` frame renews the session (answered by
`{"type":"auth.renewed","expires_at"}`); at token expiry without renewal the server
closes with 4401. After auth the server sends `{"type":"hello","user_id","role","server_time"}`.

Close codes: 4401 unauthenticated / token expired; 4409 replaced: the user opened
more than `ZENDO_MAX_SOCKETS_PER_USER` sockets (default 3, on any process) and this
was the oldest; 1008 too many bad frames (10 within 10 s); 1009 frame over 16 KiB;
1013 slow consumer (more than 256 frames queued for the socket: reconnect); 1011
server could not open the session, or failed after the upgrade.

Client frames (JSON objects with `type`): `auth`, `location`
`{lat, lon, ts (epoch ms), accuracy?, heading?, speed?}`, `presence`
`{status: ONLINE|OFFLINE}`, `offer.accept`/`offer.decline` `{offer_id}`. Bad frames
get `{"type":"error","code","detail"}`; codes include malformed_json, invalid_frame,
unknown_type, binary_frame, forbidden (not an artisan), not_verified, the fix
rejection reasons out_of_range, clock_skew, out_of_order, too_fast (rate-limited
fixes are dropped silently), unavailable, too_many_requests, and the domain codes of
offer actions (offer_expired, offer_taken, ...). Presence frames are answered with
`{"type":"presence","status"}` (the effective status); offer frames with
`{"type":"ack","for","offer_id","intervention"?}`.

Server frames: `offer`, `offer.result`, `intervention.status`, `artisan.location`
`{intervention_id, lat, lon, heading, ts, eta_s}` (eta: straight-line distance × 1.3
at 25 km/h), `error`; to the client, on every wrong start code the artisan enters,
`start_code.failed` `{intervention_id, failures, reissued, locked, start_code?}`:
every 5th wrong code the code is reissued (`start_code` holds the new one), after 15
the job takes no more codes (`locked`; the client can still cancel).

Ops feed (ADMIN only; others get an `error` frame with code `forbidden`): the client
frame `{"type":"ops.subscribe"}` is answered by `{"type":"ops.snapshot","server_time",
"artisans":[{id, lat, lon, status, specialty}],"jobs":[{id, status, specialty, lat, lon,
artisan_id, created_at, updated_at}],"cells":[{h3, online, demand, boundary}]}` (ONLINE
and BUSY artisans, open jobs, H3 resolution-7 cells with ONLINE artisans or jobs created
in the last 15 minutes), then by `{"type":"ops.event","ts","events":[...]}` frames (at
most four a second) whose events have a `kind`: `job.created`, `job.status` `{job,
from_status, to_status, actor_role, at}`; `offer.sent`, `offer.held` (best_accept), `offer.accepted`,
`offer.declined`, `offer.expired`, `offer.taken`, `offer.revoked` `{offer_id,
intervention_id, artisan_id, distance_km}`; `artisan.status` `{artisan}`;
`artisan.positions` `{artisans: [[id, lat, lon]]}` (each artisan at most once a
second); `cells` `{cells}` (every 5 s). `{"type":"ops.unsubscribe"}` stops the feed.
The feed is the same on every gateway process.
"""

PATHS: dict[str, Any] = {
    "/ws": {
        "get": {
            "tags": ["gateway"],
            "summary": "Open the real-time WebSocket",
            "description": _WS_DESCRIPTION,
            "operationId": "openWebSocket",
            "parameters": [
                {
                    "name": "Upgrade",
                    "in": "header",
                    "required": True,
                    "schema": {"const": "websocket"},
                },
                {"name": "Origin", "in": "header", "required": False, "schema": {"type": "string"}},
            ],
            "security": [{}, *BEARER],
            "responses": {
                "101": {"description": "Switching Protocols: the WebSocket is open"},
                **problems(400, 401, 403, 503),
            },
        }
    },
    "/admin/artisans/{artisan_id}/live": {
        "get": {
            "tags": ["admin"],
            "summary": "An artisan's live position and status",
            "operationId": "getArtisanLive",
            "security": BEARER,
            "parameters": [{"name": "artisan_id", "in": "path", "required": True, "schema": UUID}],
            "responses": {
                "200": json_ok(ref("ArtisanLive")),
                **problems(401, 403, 404),
            },
        }
    },
}

SCHEMAS: dict[str, Any] = {
    "ArtisanLive": {
        "type": "object",
        "required": ["lat", "lon", "ts", "h3", "current_status"],
        "properties": {
            "lat": {"type": "number", "minimum": -90, "maximum": 90},
            "lon": {"type": "number", "minimum": -180, "maximum": 180},
            "ts": {"type": "integer", "description": "epoch ms of the last accepted fix"},
            "h3": {"type": "string", "description": "H3 cell (resolution 8) as a hex string"},
            "current_status": {"type": "string", "enum": ["ONLINE", "BUSY", "OFFLINE"]},
        },
    }
}
