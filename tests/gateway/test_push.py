"""Pushes in one process: notify to every socket of a user, tracking frames only to the
right client, offer frames routed to the offers context, slow consumers cut off."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient

from core import appkeys
from core.settings import Settings
from gateway import appkeys as gateway_keys
from gateway import tracking
from tests.factories import bearer
from tests.gateway.conftest import (
    FAST_CONFIG,
    MakeClient,
    connect,
    eventually,
    fix,
    new_artisan,
    new_user,
    now_ms,
    recv_type,
)


async def test_notify_reaches_every_socket_of_the_user_only(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    user_id, token = await new_user(db, gw_settings)
    _other, other_token = await new_user(db, gw_settings)
    a, b = await connect(gw, token), await connect(gw, token)
    other = await connect(gw, other_token)
    frame = {
        "type": "intervention.status",
        "intervention": {"id": str(uuid.uuid4()), "status": "ASSIGNED"},
    }
    await gw.app[appkeys.NOTIFIER].notify(user_id, frame)
    assert await recv_type(a, "intervention.status") == frame
    assert await recv_type(b, "intervention.status") == frame
    await other.send_json({"type": "bogus"})  # the next frame `other` sees is its own error
    assert (await other.receive_json(timeout=2))["type"] == "error"
    # a user without a socket: silently dropped
    await gw.app[appkeys.NOTIFIER].notify(uuid.uuid4(), frame)
    for ws in (a, b, other):
        await ws.close()


async def test_frames_of_every_length_class_arrive_whole_and_in_order(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    """7-bit, 16-bit and 64-bit payload lengths, back to back through one send queue."""
    user_id, token = await new_user(db, gw_settings)
    ws = await connect(gw, token)
    notifier = gw.app[appkeys.NOTIFIER]
    # Encoded sizes around the length-class edges: 125/126 bytes, 65,535/65,536 bytes.
    overhead = len(b'{"type":"intervention.status","pad":""}')
    sizes = [125, 126, 65_535, 65_536, 200_000]
    for size in sizes:
        await notifier.notify(
            user_id, {"type": "intervention.status", "pad": "x" * (size - overhead)}
        )
    for size in sizes:
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.TEXT
        assert len(msg.data.encode()) == size
        assert msg.json()["pad"] == "x" * (size - overhead)
    await ws.close()


async def test_tracking_forwards_fixes_to_the_client_of_the_job_only(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    artisan_id, artisan_token = await new_artisan(db, gw_settings)
    client_id, client_token = await new_user(db, gw_settings)
    _stranger, stranger_token = await new_user(db, gw_settings)
    artisan = await connect(gw, artisan_token)
    client = await connect(gw, client_token)
    stranger = await connect(gw, stranger_token)
    intervention_id = uuid.uuid4()
    redis = gw.app[appkeys.REDIS]
    await tracking.start_tracking(
        redis,
        artisan_id=artisan_id,
        intervention_id=intervention_id,
        client_id=client_id,
        job_lat=48.8700,
        job_lon=2.3522,
    )
    ts = now_ms()
    await artisan.send_json(fix(48.8600, 2.3522, ts, heading=12.5))
    frame = await recv_type(client, "artisan.location")
    expected_eta = round(1111.95 * 1.3 / (25000 / 3600))
    assert frame["intervention_id"] == str(intervention_id)
    assert (frame["lat"], frame["lon"], frame["heading"], frame["ts"]) == (48.86, 2.3522, 12.5, ts)
    assert abs(frame["eta_s"] - expected_eta) <= 2
    await tracking.stop_tracking(redis, artisan_id=artisan_id)
    await artisan.send_json(fix(48.8601, 2.3522, ts + 1000))
    await asyncio.sleep(0.3)
    await client.send_json({"type": "bogus"})
    assert (await client.receive_json(timeout=2))["type"] == "error"  # no second location frame
    await stranger.send_json({"type": "bogus"})
    assert (await stranger.receive_json(timeout=2))["type"] == "error"
    for ws in (artisan, client, stranger):
        await ws.close()


async def test_offer_frames_map_domain_errors_to_error_frames(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    _artisan_id, token = await new_artisan(db, gw_settings)
    ws = await connect(gw, token)
    await ws.send_json({"type": "offer.accept", "offer_id": str(uuid.uuid4())})
    error = await recv_type(ws, "error")
    assert error["code"] == "not_found"
    await ws.send_json({"type": "offer.decline", "offer_id": str(uuid.uuid4())})
    assert (await recv_type(ws, "error"))["code"] == "not_found"
    await ws.close()


async def test_offer_answers_over_the_socket_count_for_admission_control(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    """An offer answered over a socket is work like a request: admission control counts
    it in flight while it runs and judges its answer time (never refusing it)."""
    from zendo.admission import Admission

    admission = gw.app[appkeys.WORK_METER]
    assert isinstance(admission, Admission)
    _artisan_id, token = await new_artisan(db, gw_settings)
    ws = await connect(gw, token)
    answers = len(admission.window_answers)
    admission.in_flight = admission.max_in_flight  # new HTTP work would be refused now
    await ws.send_json({"type": "offer.accept", "offer_id": str(uuid.uuid4())})
    assert (await recv_type(ws, "error"))["code"] == "not_found"  # answered all the same
    await ws.send_json({"type": "offer.decline", "offer_id": str(uuid.uuid4())})
    assert (await recv_type(ws, "error"))["code"] == "not_found"
    assert admission.in_flight == admission.max_in_flight  # each counted in, then out
    assert len(admission.window_answers) == answers + 2
    assert admission.window_peak >= admission.max_in_flight + 1
    admission.in_flight = 0
    await ws.close()


async def test_offer_frames_without_offer_actions_are_unavailable(
    gw_settings: Settings,
    clean_state: None,
    db: asyncpg.Connection,
    aiohttp_client: Any,
) -> None:
    from zendo.app import create_app

    app: web.Application = create_app(gw_settings)
    app[gateway_keys.GATEWAY_CONFIG] = FAST_CONFIG
    app.pop(appkeys.OFFER_ACTIONS, None)
    client = await aiohttp_client(app)
    _artisan_id, token = await new_artisan(db, gw_settings)
    ws = await connect(client, token)
    await ws.send_json({"type": "offer.accept", "offer_id": str(uuid.uuid4())})
    assert (await recv_type(ws, "error"))["code"] == "unavailable"
    await ws.close()


async def test_slow_consumer_is_disconnected_and_others_are_unaffected(
    make_client: MakeClient, db: asyncpg.Connection, gw_settings: Settings
) -> None:
    client = await make_client()
    slow_id, slow_token = await new_user(db, gw_settings)
    fast_id, fast_token = await new_user(db, gw_settings)
    # The slow client never reads: a tiny receive buffer makes the server's writes stall.
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        slow = await session.ws_connect(
            client.make_url("/ws"), headers=bearer(slow_token), max_msg_size=0, autoping=False
        )
        sock = slow._response.connection.transport.get_extra_info("socket")  # type: ignore[union-attr]
        import socket

        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow._response.connection.transport.pause_reading()  # type: ignore[union-attr]
        fast = await connect(client, fast_token)
        notifier = client.app[appkeys.NOTIFIER]
        big = {"type": "intervention.status", "intervention": {"description": "x" * 8000}}
        loop = asyncio.get_running_loop()
        slowest = 0.0
        for i in range(2000):
            started = loop.time()
            await notifier.notify(slow_id, big)
            slowest = max(slowest, loop.time() - started)
            if i % 50 == 0:
                await notifier.notify(fast_id, {"type": "intervention.status", "n": i})
                await asyncio.sleep(0)
        # the producer never waited for the slow socket (one Redis round trip per call)
        assert slowest < 0.5
        assert (await recv_type(fast, "intervention.status", n=1950))["n"] == 1950
        gateway = client.app[gateway_keys.GATEWAY]

        async def slow_gone() -> bool:
            return str(slow_id) not in gateway.sessions

        await eventually(slow_gone, within=5.0)
        slow._response.connection.transport.abort()  # type: ignore[union-attr]
        assert str(fast_id) in gateway.sessions
        await fast.send_json({"type": "bogus"})
        assert (await recv_type(fast, "error"))["code"] == "unknown_type"
        await fast.close()


async def test_publish_many_sends_each_frame_to_the_other_nodes_of_its_user_only(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    """The pushes of one committed change go out in one Lua call; each frame must still
    reach exactly the other live nodes of its own user."""
    from redis.asyncio import Redis

    from core import redis_keys
    from gateway import live

    notifier = gw.app[appkeys.NOTIFIER]
    here = notifier.gateway.node_id
    remote_user, local_user, gone_user = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    redis = Redis.from_url(gw_settings.redis_url)
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    try:
        alive, expired = live.now_ms() + 60_000, live.now_ms() - 1
        await redis.zadd(redis_keys.user_nodes(str(remote_user)), {"other": alive, here: alive})
        await redis.zadd(redis_keys.user_nodes(str(local_user)), {here: alive})
        await redis.zadd(redis_keys.user_nodes(str(gone_user)), {"other": expired})
        await pubsub.subscribe(redis_keys.node_channel("other"), redis_keys.node_channel(here))
        await notifier.publish_many(
            [(local_user, b'{"n":1}'), (remote_user, b'{"n":2}'), (gone_user, b'{"n":3}')]
        )
        await notifier.publish_many([])  # nothing to send: no call
        received: list[dict[str, Any]] = []
        async with asyncio.timeout(5):
            while not received:
                message = await pubsub.get_message(timeout=1.0)
                if message is not None:
                    received.append(message)
        await asyncio.sleep(0.2)  # anything else published would have arrived by now
        while (message := await pubsub.get_message(timeout=0.1)) is not None:
            received.append(message)
        assert [(m["channel"], m["data"]) for m in received] == [
            (redis_keys.node_channel("other").encode(), f'{remote_user}\n{{"n":2}}'.encode())
        ]
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await redis.aclose()


async def test_publish_many_survives_a_script_flush_and_counts_a_failed_call(
    gw: TestClient[Any, Any], gw_settings: Settings
) -> None:
    """After a Redis restart (its scripts gone) the call loads the script and is sent
    again; a call Redis refuses is counted and logged, never raised to the caller,
    whose change is committed already."""
    from redis.asyncio import Redis

    from core import redis_keys
    from gateway import live

    notifier = gw.app[appkeys.NOTIFIER]
    user, broken_user = uuid.uuid4(), uuid.uuid4()
    redis = Redis.from_url(gw_settings.redis_url)
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    try:
        await redis.zadd(redis_keys.user_nodes(str(user)), {"other": live.now_ms() + 60_000})
        await pubsub.subscribe(redis_keys.node_channel("other"))
        await redis.script_flush()  # as after a Redis restart
        await notifier.publish_many([(user, b'{"n":1}')])
        async with asyncio.timeout(5):
            while (message := await pubsub.get_message(timeout=1.0)) is None:
                pass
        assert message["data"] == f'{user}\n{{"n":1}}'.encode()

        await redis.set(redis_keys.user_nodes(str(broken_user)), "not a sorted set")
        failures = notifier.gateway.notify_failures._value.get()
        await notifier.publish_many([(broken_user, b'{"n":2}'), (user, b'{"n":3}')])

        # counted once its reply is read (gateway/redis_writer.py: READ_EVERY_S later)
        async def counted() -> bool:
            return bool(notifier.gateway.notify_failures._value.get() == failures + 2)

        await eventually(counted)
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await redis.aclose()


async def test_socket_actions_are_answered_in_the_order_they_were_sent(
    gw: TestClient[Any, Any], db: asyncpg.Connection, gw_settings: Settings
) -> None:
    """A presence change runs in a task chained to the socket; an offer answer right
    behind it is chained too (the read loop awaits an offer answer itself only when
    nothing is pending), and the one after them is awaited in the read loop."""
    _artisan_id, token = await new_artisan(db, gw_settings)
    ws = await connect(gw, token)
    unknown = str(uuid.uuid4())
    for frame in (
        {"type": "presence", "status": "OFFLINE"},
        {"type": "offer.accept", "offer_id": unknown},
        {"type": "presence", "status": "OFFLINE"},
        {"type": "offer.decline", "offer_id": unknown},
        {"type": "offer.accept", "offer_id": unknown},
    ):
        await ws.send_json(frame)
    answers = [await ws.receive_json(timeout=3) for _ in range(5)]
    assert [(a["type"], a.get("code")) for a in answers] == [
        ("presence", None),
        ("error", "not_found"),
        ("presence", None),
        ("error", "not_found"),
        ("error", "not_found"),
    ]
    await ws.close()
