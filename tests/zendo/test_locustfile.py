"""The locustfile's users behave as the README says (each run in a fresh interpreter:
importing the locustfile patches gevent into the whole process)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


def _python_lines(script: str, **env: str) -> list[str]:
    """The output lines of `script` run by a fresh interpreter: importing the locustfile
    patches gevent into the whole process."""
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, **env},
    ).stdout.splitlines()


_KEEP_ALIVE_CHECK = """
import os, socket
from benchmarks import locustfile
from benchmarks.locust_http import idle_socket_alive

listener = socket.create_server(("127.0.0.1", 0))
client = socket.create_connection(listener.getsockname())
server, _ = listener.accept()
high = socket.socket(fileno=os.dup2(client.fileno(), 1500))  # past FD_SETSIZE
print("idle", idle_socket_alive(high))
server.sendall(b"stray")
print("stray bytes", idle_socket_alive(high))
high.recv(16)
server.close()
print("peer closed", idle_socket_alive(high))
"""


def test_locust_reuses_idle_keep_alive_sockets_past_descriptor_1023() -> None:
    """select() fails past fd 1023 (geventhttpclient took that for a dead socket, so
    with 10,000 WebSockets open each request opened a new connection): the check
    polls, and only a socket with nothing to read is reused."""
    assert _python_lines(_KEEP_ALIVE_CHECK) == [
        "idle True",
        "stray bytes False",
        "peer closed False",
    ]


_TEXT_FRAME_CHECK = """
from websocket import ABNF
from benchmarks.locust_socket import text_frame

for size in (0, 1, 125, 126, 65535, 65536, 70000):
    payload = bytes(i % 251 for i in range(size))
    frame = ABNF.create_frame(payload, ABNF.OPCODE_TEXT)
    frame.get_mask_key = lambda n: bytes(n)
    print(size, text_frame(payload) == frame.format())
"""


def test_locust_builds_the_frames_websocket_client_would() -> None:
    """The artisans' fixes skip websocket-client's frame builder: the same bytes as it
    sends with an all-zero mask key, for each of the three length encodings."""
    assert _python_lines(_TEXT_FRAME_CHECK) == [
        f"{size} True" for size in (0, 1, 125, 126, 65535, 65536, 70000)
    ]


_CLOSED_SEND_CHECK = """
import threading, types
from locust.env import Environment
from benchmarks.locust_socket import SocketUser

env = Environment()
seen = []
env.events.request.add_listener(lambda **event: seen.append(event))
user = types.SimpleNamespace(
    ws=types.SimpleNamespace(sock=None, lock=threading.Lock()), environment=env
)
SocketUser.send(user, {"type": "location", "lat": 48.85, "lon": 2.35, "ts": 1})
print(len(seen), seen[0]["request_type"], seen[0]["name"])
print("WebSocketConnectionClosedException" in str(seen[0]["exception"]))
"""


def test_locust_reports_a_send_on_a_closed_socket_as_a_failure() -> None:
    """A fix sent after the socket closed is one WS failure naming websocket-client's
    own error, as its send would raise: not a crash of the user's task."""
    assert _python_lines(_CLOSED_SEND_CHECK) == ["1 WS send location", "True"]


_WHOLE_SEND_CHECK = """
import threading, types
import gevent, orjson
from gevent import socket
from locust.env import Environment
from benchmarks.locust_socket import SocketUser, text_frame

env = Environment()
seen = []
env.events.request.add_listener(lambda **event: seen.append(event))
sender, receiver = socket.socketpair()
sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # the first send is partial
user = types.SimpleNamespace(
    ws=types.SimpleNamespace(sock=sender, lock=threading.Lock()), environment=env
)
frames = [{"type": "location", "note": "x" * 300_000}, {"type": "location", "lat": 1.0}]
expected = b"".join(text_frame(orjson.dumps(frame)) for frame in frames)
got = bytearray()

def read():
    while len(got) < len(expected):
        got.extend(receiver.recv(65536))

reader = gevent.spawn(read)
for frame in frames:
    SocketUser.send(user, frame)
reader.join(timeout=10)
print(bytes(got) == expected, len(seen))
"""


def test_locust_sends_a_whole_frame_when_the_socket_takes_part_of_it() -> None:
    """A frame goes in one send when the socket has room; what a full buffer left over
    follows, in order, before the next frame: nothing lost, nothing failed."""
    assert _python_lines(_WHOLE_SEND_CHECK) == ["True 0"]


_PACING_CHECK = """
import time, types
from benchmarks import locustfile, locust_process

# A request that started on its slot 0.05 s ago: the next one is one pacing after the slot.
client = types.SimpleNamespace(number=0, next_request_at=time.perf_counter() - 0.05)
print(locustfile.ClientUser.wait_time(client))
# A client that fell 100 s behind goes on now, with no burst of catch-up requests.
client.next_request_at = time.perf_counter() - 100
print(locustfile.ClientUser.wait_time(client))
print(locustfile.ClientUser.wait_time(client))
"""


def test_clients_keep_their_own_phase() -> None:
    """locust's constant_pacing counts from the user's creation, which undid the random
    phase each client takes: all 300 clients fired within the same half second."""
    out = _python_lines(_PACING_CHECK, ZENDO_BENCH_CLIENT_PACING="6")
    on_slot, behind, after_behind = (float(x) for x in out)
    assert 5.9 < on_slot <= 5.95
    assert behind == 0.0
    assert 5.99 < after_behind <= 6.0


_STEPS_CHECK = """
import time, types
from benchmarks import locustfile, locust_steps

print(locust_steps.PLAN.rates, locust_steps.PLAN.clients_for(2.0), locust_steps.ActiveClients.limit)
inside = types.SimpleNamespace(number=5, next_request_at=None)
outside = types.SimpleNamespace(number=6, next_request_at=None)
print(0.0 <= locustfile.ClientUser.wait_time(inside) <= 6.0)
print(locustfile.ClientUser.wait_time(outside), outside.next_request_at)
locust_steps.ActiveClients.limit = locust_steps.PLAN.clients_for(4.0)  # the next step
print(0.0 <= locustfile.ClientUser.wait_time(outside) <= 6.0, outside.next_request_at is not None)
try:
    locust_steps.StepPlan.from_env({"ZENDO_BENCH_RATE_STEPS": "10,-1"}, 6.0)
except ValueError as exc:
    print("refused", "positive" in str(exc))
"""


def test_rate_steps_let_clients_in_by_their_start_order() -> None:
    """With ZENDO_BENCH_RATE_STEPS, rate x pacing clients create jobs; a client left out
    checks again every second and, once a step lets it in, takes a phase of its own."""
    out = _python_lines(_STEPS_CHECK, ZENDO_BENCH_RATE_STEPS="1,4", ZENDO_BENCH_CLIENT_PACING="6")
    assert out == [
        "(1.0, 4.0) 12 6",
        "True",
        "1.0 None",
        "True True",
        "refused True",
    ]


_SHARED_ARTISAN_CHECK = """
import json, os, tempfile
path = os.path.join(tempfile.mkdtemp(), "seed.jsonl")
with open(path, "w") as fh:
    for role in ("ARTISAN", "CLIENT"):
        fh.write(json.dumps({"role": role, "access_token": "t", "lat": 48.85, "lon": 2.35}) + "\\n")
os.environ["ZENDO_SEED_FILE"] = path
from locust.env import Environment
from locust.exception import StopUser
from benchmarks import locustfile

locustfile.ArtisanUser.host = "http://127.0.0.1:9"  # never reached: no socket opens
env = Environment(user_classes=[locustfile.ArtisanUser])
failures = []
env.events.request.add_listener(lambda **kw: failures.append((kw["request_type"], kw["name"], str(kw["exception"]))))
next(locustfile._next_artisan)  # the one seeded artisan is taken by a user already
for _ in range(2):
    try:
        locustfile.ArtisanUser(env).on_start()
        print("started")
    except StopUser:
        print("stopped")
print(failures)
"""


def test_artisan_users_beyond_the_seed_stop_instead_of_sharing_a_profile() -> None:
    """Two locust users on one artisan both answered its offers: the slower one's accept
    came back as an `offer_accepted` error frame, a failure the server did not make."""
    stopped, again, failures = _python_lines(_SHARED_ARTISAN_CHECK)
    assert (stopped, again) == ("stopped", "stopped")
    assert failures.count("'setup'") == 1  # said once, however many extra users
    assert "more artisan users than the 1 seeded artisans" in failures


_RECONNECT_USER = """
import sys, types, gevent
from benchmarks import locustfile

seen = []
fire = lambda **kw: seen.append((kw["request_type"], kw["name"], str(kw["exception"] or "")))
user = locustfile.ClientUser.__new__(locustfile.ClientUser)  # no locust runner needed
user.host = "http://127.0.0.1:" + sys.argv[1]
user.profile = {"access_token": "t"}
user.environment = types.SimpleNamespace(events=types.SimpleNamespace(
    request=types.SimpleNamespace(fire=fire)))
user.outcomes = {}
print("connecting", flush=True)
user.open_socket()  # nothing listens yet: refused, retried by the README's rule
print("open", user.ws is not None)
gevent.sleep(2.0)  # the server closes that first socket: the reader opens another
print("open", user.ws is not None)
for row in sorted(set(seen)):
    print(*row, sep="|")
"""


_CLOSE_FIRST_SOCKET = """
import sys
from aiohttp import web

opened = 0

async def ws(request):
    global opened
    opened += 1
    sock = web.WebSocketResponse()
    await sock.prepare(request)
    await sock.send_json({"type": "hello"})
    if opened == 1:  # "try again later", as a slow consumer's close says
        await sock.close(code=1013, message=b'{"retry_after_ms": 100}')
    else:
        async for _ in sock:
            pass
    return sock

app = web.Application()
app.router.add_get("/ws", ws)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def test_a_locust_user_retries_a_refused_connect_and_reopens_a_closed_socket() -> None:
    """A user left without a socket gets no offers, or (a client) no status frames: on
    a fresh checkout the pool listened only after compiling, every client's first
    connect was refused and each of its jobs ended TIMEOUT."""
    port = free_port()
    user = subprocess.Popen(
        [sys.executable, "-c", _RECONNECT_USER, str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    server: subprocess.Popen[bytes] | None = None
    try:
        assert user.stdout is not None
        assert user.stdout.readline() == "connecting\n"
        time.sleep(0.5)  # the user's first attempt meets nothing listening
        server = subprocess.Popen([sys.executable, "-c", _CLOSE_FIRST_SOCKET, str(port)], cwd=ROOT)
        out, err = user.communicate(timeout=60)
    finally:
        user.kill()
        if server is not None:
            server.kill()
            server.wait()
    assert user.returncode == 0, err[-2000:]
    lines = out.splitlines()
    assert lines[:2] == ["open True", "open True"], out
    rows = {tuple(line.split("|", 2)) for line in lines[2:]}
    assert ("WS", "connect") in {r[:2] for r in rows if r[2]}  # the refusal: a failure
    assert ("LATENCY", "ws connect", "") in rows
    assert ("WS", "closed, reopened", " close 1013") in rows


_SHED_CREATE_USER = """
import sys, gevent, gevent.pool
from locust.env import Environment
from benchmarks import locustfile

locustfile.ClientUser.host = "http://127.0.0.1:" + sys.argv[1]
env = Environment(user_classes=[locustfile.ClientUser])
rows = []
env.events.request.add_listener(
    lambda **kw: rows.append((kw["name"], str(kw["exception"] or "")))
)
user = locustfile.ClientUser(env)  # not started: no socket, no pacing
user.number, user.profile = 0, {"access_token": "t"}
user.outcomes, user.followers = {}, gevent.pool.Group()
for description in ("busy once", "always busy"):
    body = {"specialty": "PLUMBER", "lat": 48.85, "lon": 2.35, "description": description}
    user.create(body, attempt=0)
gevent.sleep(5)  # the retries wait their turn (Retry-After: 0, so the rule's own delays)
user.followers.kill(block=False)
print(locustfile.CREATE_ATTEMPTS)
print(locustfile.POST_SENT.get("job-1") is not None)
for row in rows:
    print(*row, sep="|")
"""


_SHED_CREATES = """
import sys
from collections import Counter
from aiohttp import web

attempts = Counter()

async def create(request):
    description = (await request.json())["description"]
    attempts[description] += 1
    if description == "always busy" or attempts[description] == 1:
        return web.json_response(
            {"code": "overloaded"}, status=503, headers={"Retry-After": "0"}
        )
    return web.json_response({"id": "job-1", "start_code": "1234"}, status=201)

app = web.Application()
app.router.add_post("/interventions", create)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def test_a_locust_client_retries_a_shed_creation_by_the_readme_rule() -> None:
    """The README says a request answered 503 `overloaded` is retried by the reconnect
    rule; the load test's clients dropped a shed creation instead, so a few seconds of
    shedding on a slow machine cost the run those jobs for good."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", _SHED_CREATES, str(port)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the stub server did not start"
                time.sleep(0.1)
        out = subprocess.run(
            [sys.executable, "-c", _SHED_CREATE_USER, str(port)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        server.kill()
        server.wait()
    assert out.returncode == 0, out.stderr[-2000:]
    attempts_allowed, tracked, *lines = out.stdout.splitlines()
    rows = [tuple(line.split("|", 1)) for line in lines]
    shed = ("POST /interventions shed (503 overloaded)", "")
    # "busy once": shed, then created on its first retry (and followed)
    assert ("/interventions", "") in rows
    assert tracked == "True"
    # both shed at first; "always busy" stops after CREATE_ATTEMPTS attempts in all
    assert rows.count(shed) == 1 + int(attempts_allowed)
    assert all(not error for _name, error in rows)


_FRAME_READER_CHECK = """
import threading, types
import gevent
from gevent import socket
from websocket import ABNF
from benchmarks.locust_socket import FrameReader, OP_CLOSE, OP_PONG, client_frame

def server_frame(payload, opcode=ABNF.OPCODE_TEXT, fin=1):
    frame = ABNF(fin, 0, 0, 0, opcode, 0, payload)  # unmasked, as a server sends
    return frame.format()

theirs, ours = socket.socketpair()
pongs = []
reader = FrameReader(ours, pongs.append)
sizes = (0, 1, 125, 126, 65535, 65536, 70000)
stream = b"".join(server_frame(bytes(i % 251 for i in range(n))) for n in sizes)
stream += server_frame(b"are you there", ABNF.OPCODE_PING)
stream += server_frame(b"part one, ", fin=0) + server_frame(b"part two", ABNF.OPCODE_CONT)
stream += server_frame(b"\\x03\\xe8bye", ABNF.OPCODE_CLOSE)

def feed():  # in pieces of every size, as TCP may deliver them
    for start in range(0, len(stream), 7919):
        theirs.sendall(stream[start:start + 7919])
        gevent.sleep(0)
    theirs.close()

gevent.spawn(feed)
for n in sizes:
    opcode, payload = reader.next()
    print(n, opcode, payload == bytes(i % 251 for i in range(n)))
print(reader.next())
print("sent", [f == client_frame(b"are you there", OP_PONG) for f in pongs])
print(reader.next())
print("close answered", pongs[1:] == [client_frame(b"\\x03\\xe8", OP_CLOSE)])
try:
    reader.next()
except Exception as exc:
    print("end", type(exc).__name__)
print("pong frame", client_frame(b"hi", OP_PONG) == bytes((0x8A, 0x82, 0, 0, 0, 0)) + b"hi")
"""


def test_locust_reads_the_servers_frames_as_websocket_client_would() -> None:
    """The users' reader skips websocket-client's frame parser: every length encoding,
    frames split across reads, a ping answered with its pong (not returned), a
    fragmented message joined, the close frame's data answered with a close echoing its
    code (as websocket-client does), and the socket's end."""
    assert _python_lines(_FRAME_READER_CHECK) == [
        *(f"{n} 1 True" for n in (0, 1, 125, 126, 65535, 65536, 70000)),
        "(1, b'part one, part two')",
        "sent [True]",
        "(8, b'\\x03\\xe8bye')",
        "close answered True",
        "end WebSocketConnectionClosedException",
        "pong frame True",
    ]


_FIX_CLOCK_CHECK = """
import time
import gevent
from benchmarks.fix_clock import FixClock

clock = FixClock(0.2, tick_s=0.01)
calls = {name: [] for name in "abcd"}
fixes = {name: (lambda name=name: calls[name].append(time.perf_counter())) for name in calls}
for fix in fixes.values():
    clock.add(fix)
gevent.sleep(1.0)
clock.remove(fixes["d"])
gevent.sleep(0.6)
counts = {name: len(times) for name, times in calls.items()}
print(all(8 <= counts[n] <= 9 for n in "abc"), 4 <= counts["d"] <= 6)
gaps = [b - a for times in calls.values() for a, b in zip(times, times[1:])]
print(all(0.15 < gap < 0.25 for gap in gaps))
print(len(clock.ticks), sum(map(len, clock.ticks)))
"""


def test_the_fix_clock_calls_each_artisan_once_a_period() -> None:
    """Every registered fix once a period (not twice, not skipped), and none after its
    artisan left: the one clock sends what 10,000 sleeping greenlets did."""
    assert _python_lines(_FIX_CLOCK_CHECK) == ["True True", "True", "20 3"]
