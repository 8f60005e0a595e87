"""`GET /ws`: handshake checks, authentication, and the read loop (CONTRACT §5).

The read loop is the only reader of the socket. Fixes go to the batcher with no
await; presence frames to a per-socket chain of tasks (in order, without blocking
reads); an answer to an offer is awaited by the read loop itself when nothing is
pending before it (it is chained otherwise), which sends its statement a loop pass
sooner than a new task would.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

from core import appkeys
from core.errors import (
    BadRequest,
    Forbidden,
    Overloaded,
    ServiceUnavailable,
    Unauthorized,
    ZendoError,
)
from core.guards import bearer_token
from core.principal import Principal
from core.tokens import verify_access_token
from gateway import appkeys as gateway_keys
from gateway import live
from gateway.direct import DirectQueue, DirectWebSocketResponse
from gateway.frames import (
    AuthFrame,
    BadFrame,
    LocationFrame,
    OfferAcceptFrame,
    OfferDeclineFrame,
    OpsSubscribeFrame,
    OpsUnsubscribeFrame,
    PresenceFrame,
    decode_frame,
)
from gateway.location import OUT_OF_RANGE, RATE_LIMITED
from gateway.node import Gateway
from gateway.session import (
    CLOSE_INTERNAL,
    CLOSE_POLICY,
    CLOSE_TRY_AGAIN,
    CLOSE_UNAUTHORIZED,
    Session,
)

log = logging.getLogger("zendo.gateway")
_REJECT_DETAIL = {
    "out_of_range": "lat/lon out of range or not finite",
    "clock_skew": "ts is more than 5 minutes off server time",
    "out_of_order": "ts is older than the last accepted fix",
    "too_fast": "implies more than 70 m/s since the last fix",
}


def _check_origin(request: web.Request, allowed: tuple[str, ...]) -> None:
    """Origins of the allowlist, and the server's own (the ops console's page)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    origin = origin.rstrip("/")
    if origin not in allowed and origin != f"{request.scheme}://{request.host}":
        raise Forbidden("Origin is not allowed", code="origin_not_allowed")


# A handshake refused for load: its problem's detail (zendo/system/handshake_screen.py
# gives the same answer at the door).
REFUSED_DETAIL = "Too many sockets opening; retry shortly"


async def ws_handler(request: web.Request) -> web.StreamResponse:
    gateway: Gateway = request.app[gateway_keys.GATEWAY]
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    # admitted at the door (zendo/system/handshake_screen.py), else judged here
    if not gateway.opening.arrive(peer) and gateway.opening.full():
        # Past what this process serves promptly: refused before the upgrade, so the
        # sockets it admits get their hello quickly (the client retries, README). First
        # thing, before the token's check and its Redis round trip: in a reconnect storm
        # most handshakes are refused, and each costs the sockets being served.
        gateway.metrics.ws_refused.inc()
        raise Overloaded(
            REFUSED_DETAIL,
            retry_after_s=gateway.opening.refused(),
        )
    # Counted as opening from its admission, not from its upgrade: the token's check is a
    # Redis round trip, and a burst of handshakes accepted in one loop turn would all pass
    # the check above before any of them counted.
    ticket = gateway.opening.begin()
    try:
        return await _serve_socket(request, gateway, ticket)
    finally:
        gateway.opening.end(ticket, hello=False)  # one that never got its hello: no-op after


async def _serve_socket(request: web.Request, gateway: Gateway, ticket: int) -> web.StreamResponse:
    settings = gateway.settings
    config = gateway.config
    _check_origin(request, settings.cors_origins)
    principal: Principal | None = None
    token = bearer_token(request)
    if token is not None:
        principal = verify_access_token(settings.jwt_secret, token)  # 401 before the upgrade
        await gateway.app[appkeys.SESSIONS].check(principal)
    ws = DirectWebSocketResponse(
        heartbeat=config.heartbeat_s,
        max_msg_size=config.max_msg_size,
        compress=False,  # permessage-deflate costs ~100 KiB of zlib state per socket
        writer_limit=config.writer_limit,
        decode_text=False,
        autoclose=False,  # a client's close is answered in its turn (_read_loop)
    )
    if not ws.can_prepare(request).ok:
        raise BadRequest("Expected a WebSocket upgrade", code="upgrade_required")
    await ws.prepare(request)
    gateway.metrics.ws_connections.inc()
    try:
        if principal is None:
            principal = await _first_frame_auth(gateway, ws)
            if principal is None:
                return ws
        session = Session(
            ws,
            request,
            user_id=str(principal.user_id),
            role=principal.role,
            expires_at=principal.expires_at,
            max_queue=config.send_queue_max,
            write_limit=config.writer_limit,
            session_id=principal.session_id,
        )
        try:
            await gateway.open(session)
        except Exception:
            log.exception("could not open session for %s", session.user_id)
            await ws.close(code=CLOSE_INTERNAL, message=b"unavailable")
            return ws
        try:
            session.send(
                {
                    "type": "hello",
                    "user_id": session.user_id,
                    "role": session.role,
                    "server_time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                }
            )
            waited = gateway.opening.end(ticket)
            if waited is not None:
                gateway.metrics.ws_hello_seconds.observe(waited)
            gateway.sockets.opened(session)  # may close the user's oldest socket
            _schedule_expiry(session)
            await _read_loop(gateway, session, ws.direct_queue)
        finally:
            session.stop()
            gateway.app[gateway_keys.OPS_HUB].unsubscribe(session)
            gateway.close(session)
    except Exception:
        # Past the upgrade the answer can only be a close frame: an error left to the
        # HTTP middleware would write a 500 response into the WebSocket stream.
        log.exception("socket failed after the upgrade")
        if not ws.closed:
            await ws.close(code=CLOSE_INTERNAL, message=b"internal error")
    finally:
        gateway.metrics.ws_connections.dec()
        _drop_heartbeat_callback(request)
    return ws


def _drop_heartbeat_callback(request: web.Request) -> None:
    """Let reference counting free a finished socket at once.

    With a heartbeat, aiohttp hands the connection's protocol a bound method of the
    response (`_on_data_received`) and keeps it there after the connection is lost:
    protocol -> method -> response -> its reader and writer -> protocol, a cycle of ~30
    objects per socket (counted in the tests) that only the cyclic collector frees, so
    a closed socket's memory waited for a collection of an older generation. The
    handler is done with the socket here, so the callback has nothing left to do.
    """
    protocol = request.protocol
    if protocol is not None:
        protocol._data_received_cb = None  # aiohttp's own attribute; no public way


async def _first_frame_auth(gateway: Gateway, ws: web.WebSocketResponse) -> Principal | None:
    try:
        msg = await ws.receive(timeout=gateway.settings.ws_auth_timeout_s)
    except TimeoutError:
        await ws.close(code=CLOSE_UNAUTHORIZED, message=b"authentication timeout")
        return None
    if msg.type is WSMsgType.CLOSE:
        await ws.close(drain=False)  # the client's close answered (autoclose is off)
        return None
    if msg.type is not WSMsgType.TEXT:
        if not ws.closed:
            await ws.close(code=CLOSE_UNAUTHORIZED, message=b"authenticate first")
        return None
    try:
        frame = decode_frame(msg.data)
        if not isinstance(frame, AuthFrame):
            raise Unauthorized("The first frame must be an auth frame")
        principal = verify_access_token(gateway.settings.jwt_secret, frame.token)
        return await gateway.app[appkeys.SESSIONS].check(principal)
    except (BadFrame, Unauthorized) as exc:
        await ws.close(code=CLOSE_UNAUTHORIZED, message=str(exc)[:100].encode())
        return None
    except ServiceUnavailable:
        await ws.close(code=CLOSE_TRY_AGAIN, message=b"sessions cannot be checked")
        return None


def _schedule_expiry(session: Session) -> None:
    if session.expiry_handle is not None:
        session.expiry_handle.cancel()
    loop = asyncio.get_running_loop()
    delay = max(0.0, session.expires_at - time.time())
    session.expiry_handle = loop.call_later(
        delay, session.close_soon, CLOSE_UNAUTHORIZED, "token expired"
    )


async def _read_loop(gateway: Gateway, session: Session, queue: DirectQueue) -> None:
    ws = session.ws
    take_fix = functools.partial(_take_fix, gateway, session)
    try:
        while True:
            queue.direct = take_fix  # while it waits only (gateway/direct.py)
            msg = await ws.receive()
            queue.direct = None
            if msg.type is WSMsgType.TEXT:
                answer = _on_text(gateway, session, msg.data)
                if answer is not None:
                    await _perform(session, answer)
            elif msg.type is WSMsgType.BINARY:
                _junk(gateway, session, "binary_frame", "Only text frames are accepted")
            else:  # CLOSE, CLOSING, CLOSED, ERROR (e.g. over 16 KiB: aiohttp closed with 1009)
                # thousands of sockets end together when the network blips: their cleanups
                # go a few per loop iteration, between which requests are served
                await gateway.closing.wait()
                if msg.type is WSMsgType.CLOSE:
                    await ws.close(drain=False)  # answers the client's close (autoclose is off)
                return
    finally:
        queue.direct = None


def _take_fix(gateway: Gateway, session: Session, data: bytes) -> bool:
    """An artisan's location frame, handled as aiohttp parses it: True. Anything else
    (False) is queued for the read loop, which decodes it again and answers it."""
    if not session.is_artisan or session.ws.closed:
        return False
    try:
        frame = decode_frame(data)
    except BadFrame:
        return False
    if not isinstance(frame, LocationFrame):
        return False
    try:
        _on_location(gateway, session, frame)
    except Exception:  # raised into aiohttp's parser, it would end the socket
        log.exception("location frame failed for %s", session.user_id)
        session.send_error("internal_error", "The request could not be processed")
    return True


def _junk(gateway: Gateway, session: Session, code: str, detail: str) -> None:
    session.send_error(code, detail)
    now = time.monotonic()
    junk = session.junk
    junk.append(now)
    window = gateway.config.junk_window_s
    while junk and now - junk[0] > window:
        junk.popleft()
    if len(junk) >= gateway.config.junk_limit:
        session.close_soon(CLOSE_POLICY, "too many bad frames")


def _on_text(gateway: Gateway, session: Session, data: bytes) -> Coroutine[Any, Any, None] | None:
    """Handle a frame; an offer answer with nothing pending before it is returned, for
    the read loop to await: started from a new task, its statement would only be sent on
    the loop's next pass (0.4 / 4.8 / 18 ms p50 / p90 / p99 in the dispatch benchmark).
    The socket's next frames wait for it, in order, as they would behind a chained one."""
    try:
        frame = decode_frame(data)
    except BadFrame as exc:
        if exc.code == OUT_OF_RANGE and session.is_artisan:
            gateway.rejected[OUT_OF_RANGE].inc()
            session.send_error(OUT_OF_RANGE, _REJECT_DETAIL[OUT_OF_RANGE])
        else:
            _junk(gateway, session, exc.code, exc.detail)
        return None
    if isinstance(frame, LocationFrame):
        if _artisan_only(session, "location"):
            _on_location(gateway, session, frame)
    elif isinstance(frame, AuthFrame):
        _chain(gateway, session, lambda: _on_renewal(gateway, session, frame))
    elif isinstance(frame, PresenceFrame):
        if _artisan_only(session, "presence"):
            _chain(gateway, session, lambda: _on_presence(gateway, session, frame.status))
    elif isinstance(frame, OfferAcceptFrame | OfferDeclineFrame):
        if _artisan_only(session, frame.__struct_config__.tag):  # type: ignore[arg-type]
            if session.actions is None or session.actions.done():
                return _on_offer(gateway, session, frame)
            _chain(gateway, session, lambda: _on_offer(gateway, session, frame))
    elif isinstance(frame, OpsSubscribeFrame):
        _chain(gateway, session, lambda: gateway.app[gateway_keys.OPS_HUB].subscribe(session))
    elif isinstance(frame, OpsUnsubscribeFrame):
        gateway.app[gateway_keys.OPS_HUB].unsubscribe(session)
    return None


def _artisan_only(session: Session, frame_type: str) -> bool:
    if session.is_artisan:
        return True
    session.send_error("forbidden", f"{frame_type} frames are for artisans")
    return False


def _on_location(gateway: Gateway, session: Session, frame: LocationFrame) -> None:
    validator = session.validator
    assert validator is not None
    ts = int(frame.ts)
    reason = validator.check(frame.lat, frame.lon, ts, live.now_ms())
    if reason is not None:
        gateway.rejected[reason].inc()
        if reason != RATE_LIMITED:  # excess is dropped silently (and counted)
            session.send_error(reason, _REJECT_DETAIL[reason])
        return
    moved = validator.moved(frame.lat, frame.lon, ts)
    gateway.batcher.add(session.user_id, (frame.lat, frame.lon, ts, frame.heading), moved)
    if not session.verified and not session.not_verified_sent:
        session.not_verified_sent = True
        session.send_error("not_verified", "Position stored, but only VERIFIED artisans go ONLINE")


async def _on_renewal(gateway: Gateway, session: Session, frame: AuthFrame) -> None:
    """A fresh token extends the socket; errors are answered by `_perform`."""
    principal = verify_access_token(gateway.settings.jwt_secret, frame.token)
    await gateway.app[appkeys.SESSIONS].check(principal)
    if str(principal.user_id) != session.user_id or principal.role != session.role:
        session.send_error("user_mismatch", "The token is for another user")
        return
    session.session_id = principal.session_id
    session.expires_at = max(session.expires_at, principal.expires_at)
    _schedule_expiry(session)
    session.send({"type": "auth.renewed", "expires_at": session.expires_at})


def _chain(gateway: Gateway, session: Session, work: Callable[[], Awaitable[None]]) -> None:
    """Run `work` after the socket's previous action: ordered, off the read loop."""
    if session.pending_actions >= gateway.config.max_pending_actions:
        session.send_error("too_many_requests", "Too many pending requests on this socket")
        return
    previous = session.actions
    session.pending_actions += 1

    async def run() -> None:
        try:
            # asyncio.wait() on a finished task still costs loop turns (its callback
            # is scheduled); usually the previous action is long done.
            if previous is not None and not previous.done():
                await asyncio.wait([previous])
            await _perform(session, work())
        finally:
            session.pending_actions -= 1

    session.actions = asyncio.get_running_loop().create_task(run())


async def _perform(session: Session, action: Awaitable[None]) -> None:
    """Run one socket action; a failure is answered with an error frame."""
    try:
        await action
    except asyncio.CancelledError:
        raise
    except ZendoError as exc:
        session.send_error(exc.code, exc.detail)
    except Exception:
        log.exception("socket action failed for %s", session.user_id)
        session.send_error("internal_error", "The request could not be processed")


async def _on_presence(gateway: Gateway, session: Session, wanted: str) -> None:
    if wanted == "ONLINE" and not session.verified:
        session.send_error("not_verified", "Only VERIFIED artisans can go ONLINE")
        return
    recent_ms = int(gateway.config.recent_fix_s * 1000)
    status = await gateway.presence.set(session.user_id, wanted, recent_ms)
    session.send({"type": "presence", "status": status})


async def _on_offer(
    gateway: Gateway, session: Session, frame: OfferAcceptFrame | OfferDeclineFrame
) -> None:
    actions = gateway.app.get(appkeys.OFFER_ACTIONS)
    kind = "offer.accept" if isinstance(frame, OfferAcceptFrame) else "offer.decline"
    if actions is None:
        session.send_error("unavailable", "Offers cannot be answered right now")
        return
    artisan_id = uuid.UUID(session.user_id)
    ack: dict[str, object] = {"type": "ack", "for": kind, "offer_id": str(frame.offer_id)}
    meter = gateway.app.get(appkeys.WORK_METER)  # admission control counts it as a request
    if meter is not None:
        meter.admitted()
    started = time.perf_counter()
    try:
        if isinstance(frame, OfferAcceptFrame):
            ack["intervention"] = await actions.accept(
                artisan_id=artisan_id, offer_id=frame.offer_id
            )
        else:
            await actions.decline(artisan_id=artisan_id, offer_id=frame.offer_id)
    finally:
        if meter is not None:
            ended = time.perf_counter()
            meter.answered(ended - started, ended)
    session.send(ack)
