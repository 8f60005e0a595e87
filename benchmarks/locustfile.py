"""Dispatch load test: artisans on WebSockets, clients requesting jobs, an admin polling.

    ZENDO_SEED_FILE=seed.jsonl locust -f benchmarks/locustfile.py --headless \
        --host http://127.0.0.1:8080 ... ArtisanUser ClientUser AdminUser

Users come from a `zendo seed` JSON-lines file (its access tokens live 15 minutes:
seed right before the run and keep runs shorter than that).

- ArtisanUser: holds a WebSocket (websocket-client; gevent-patched by locust), sends a
  location fix every 4 s, accepts offers after a human-like delay (declines a share of
  them), then drives the job through EN_ROUTE, ARRIVED, IN_PROGRESS and COMPLETED.
- ClientUser: holds a WebSocket, creates an intervention at a steady pace near a random
  seeded artisan (a creation shed with 503 is retried by the README's rule, up to
  CREATE_ATTEMPTS attempts) and follows it to a final status.
- AdminUser: polls GET /admin/match (needs ZENDO_BENCH_ADMIN_EMAIL/_PASSWORD).

locust shares the server's cores, so it spends as little as it can: HTTP requests go
through benchmarks/locust_http.py (the same requests as locust's FastHttpSession at a
third of its CPU), the server's frames are read by locust_socket.FrameReader and the
artisans' fixes are sent by one clock, benchmarks/fix_clock.py.

Custom latencies appear in locust's table as request type "LATENCY":
  "create -> first offer frame"  client POST sent -> offer frame received by the artisan
  "accept -> client status frame"  offer.accept sent -> client's ASSIGNED frame received
and WebSocket problems as failures of type "WS".

Environment: ZENDO_SEED_FILE (required), ZENDO_BENCH_ACCEPT_DELAY ("min,max" seconds,
default "1,3"), ZENDO_BENCH_DECLINE_SHARE (default 0.1), ZENDO_BENCH_CLIENT_PACING
(seconds between a client's requests, default 6), ZENDO_BENCH_CLIENTS (how many client
users; interventions/s = clients / pacing), ZENDO_BENCH_WORK_S (seconds spent
per status step, default 0.5), ZENDO_BENCH_ADMIN_EMAIL / _PASSWORD,
ZENDO_BENCH_WARMUP_S (default 0: with N > 0, the statistics are reset again N s after
the last user started, so that they cover the steady state only; `--reset-stats` alone
resets them when the last user has *started*, while 10,000 sockets are still settling);
ZENDO_BENCH_FIX_EVERY_S (an artisan's seconds between fixes, default 4);
ZENDO_BENCH_RATE_STEPS / _STEP_S / _STEPS_OUT: job rates in steps
(benchmarks/locust_steps.py; `benchmarks.bench_capacity` sets them).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
from typing import Any

import gevent
import gevent.event
import gevent.pool
from locust import User, between, constant, events, task
from locust.env import Environment
from locust.exception import StopUser

from benchmarks import (
    locust_process,  # noqa: F401 - its init hooks tune this process
    reconnect,
)
from benchmarks.fix_clock import FixClock
from benchmarks.locust_http import HttpError, LeanHttp, failure_of
from benchmarks.locust_socket import (
    CONNECT_ATTEMPTS,
    SocketUser,
    record_latency,
    record_ws_failure,
)
from benchmarks.locust_steps import ActiveClients, Run
from core.domain import SPECIALTIES

ACCEPT_DELAY = tuple(float(x) for x in os.environ.get("ZENDO_BENCH_ACCEPT_DELAY", "1,3").split(","))
DECLINE_SHARE = float(os.environ.get("ZENDO_BENCH_DECLINE_SHARE", "0.1"))
CLIENT_PACING = float(os.environ.get("ZENDO_BENCH_CLIENT_PACING", "6"))
WORK_S = float(os.environ.get("ZENDO_BENCH_WORK_S", "0.5"))
FIX_EVERY_S = float(os.environ.get("ZENDO_BENCH_FIX_EVERY_S", "4"))
FOLLOW_TIMEOUT_S = 90.0
IDLE_CHECK_S = 1.0  # a client outside the current rate step (locust_steps) looks again
# A new job shed (503) is tried again by the README's rule, this many attempts in all
# (three to six seconds with a 1 s Retry-After: a person who needs a plumber taps "retry",
# then gives up for now).
CREATE_ATTEMPTS = 4


def _load_seed() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    path = os.environ.get("ZENDO_SEED_FILE")
    if not path:
        return [], []
    with open(path) as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return [r for r in rows if r["role"] == "ARTISAN"], [r for r in rows if r["role"] == "CLIENT"]


ARTISANS, CLIENTS = _load_seed()
_next_artisan = itertools.count()
_next_client = itertools.count()

# Shared between the users of this locust process (gevent: one thread, no locks needed).
FIXES = FixClock(FIX_EVERY_S)  # every artisan's location fixes (benchmarks/fix_clock.py)
POST_SENT: dict[str, float] = {}  # intervention id -> client POST sent (perf_counter)
FIRST_OFFER: dict[str, float] = {}  # intervention id -> first offer frame received
ACCEPT_SENT: dict[str, float] = {}  # intervention id -> offer.accept sent
START_CODES: dict[str, str] = {}  # intervention id -> its start code (the client tells it)


def _first_offer_pair(env: Environment, job_id: str) -> None:
    """Report creation -> first offer once both ends are known (either may come first)."""
    if job_id in POST_SENT and job_id in FIRST_OFFER:
        record_latency(
            env, "create -> first offer frame", POST_SENT.pop(job_id), FIRST_OFFER[job_id]
        )


class ArtisanUser(SocketUser):
    weight = 100
    wait_time = constant(FIX_EVERY_S)  # unused: the ping task never returns

    def on_start(self) -> None:
        # With ZENDO_OFFER_BATCH > 1 several artisans get each job and the first accept
        # wins: an offer reported closed (taken, expired, revoked) before the human
        # delay is over is not answered, and an accept sent while the close was on its
        # way is answered 409 offer_taken / offer_expired: a lost race, counted apart.
        self.accepting: set[str] = set()
        self.closed: set[str] = set()
        self.races_lost = 0
        number = next(_next_artisan)
        if number >= len(ARTISANS):
            # Two users on one artisan would both answer its offers (the slower one gets
            # offer_accepted error frames): more artisan users than seeded artisans is a
            # misconfigured run, said once as a failure; the extra users stop.
            if number == len(ARTISANS):
                record_ws_failure(
                    self.environment,
                    "setup",
                    f"more artisan users than the {len(ARTISANS)} seeded artisans",
                )
            raise StopUser
        self.profile = ARTISANS[number]
        self.lat, self.lon = float(self.profile["lat"]), float(self.profile["lon"])
        self.open_socket()  # the first fix (the ping task) makes the artisan ONLINE

    @task
    def ping(self) -> None:
        """Register this artisan's fixes with the process's clock, then hold the user
        until locust stops it. The clock gives each artisan a random phase: the phase
        set by when its socket opened would follow the server's handshakes, which come
        in clumps when it falls behind during the ramp, and the artisans would then
        ping in step every 4 s, a burst load that real apps, started independently, do
        not make. locust's own task loop around each fix (choosing the task, asking
        wait_time, checking for a stop, a timer) cost more than the fix."""
        FIXES.add(self.fix)
        try:
            gevent.event.Event().wait()  # never set: until the user's greenlet is killed
        finally:
            FIXES.remove(self.fix)

    def fix(self) -> None:
        # A few metres of drift, well within the 70 m/s plausibility check.
        self.lat += random.uniform(-0.00005, 0.00005)
        self.lon += random.uniform(-0.00005, 0.00005)
        self.send(
            {"type": "location", "lat": self.lat, "lon": self.lon, "ts": int(time.time() * 1000)}
        )

    def on_frame(self, frame: dict[str, Any], received: float) -> None:
        kind = frame["type"]
        if kind == "offer":
            job_id = frame["intervention"]["id"]
            if job_id not in FIRST_OFFER:
                FIRST_OFFER[job_id] = received
                _first_offer_pair(self.environment, job_id)
            gevent.spawn_later(random.uniform(*ACCEPT_DELAY), self.answer, frame)
        elif kind == "offer.result" and frame["outcome"] != "accepted":
            if frame["offer_id"] in self.accepting:
                self.accepting.discard(frame["offer_id"])
                self.races_lost += 1  # its 409 is on the way
            else:
                self.closed.add(frame["offer_id"])  # not answered yet: it will not be
        elif kind == "ack" and frame.get("for") == "offer.accept":
            self.accepting.discard(frame["offer_id"])
            gevent.spawn(self.work, frame["intervention"]["id"])

    def expected_error(self, frame: dict[str, Any]) -> bool:
        """A 409 for an accept whose offer closed meanwhile: the close may come first (then
        `races_lost` counts it) or right after the 409 (an accept still in flight)."""
        if frame.get("code") not in ("offer_taken", "offer_expired"):
            return False
        if self.races_lost > 0:
            self.races_lost -= 1
        elif self.accepting:
            self.accepting.pop()  # its offer.result finds it gone and is not counted twice
        else:
            return False
        now = time.perf_counter()
        record_latency(self.environment, "accept lost the race (count)", now, now)
        return True

    def answer(self, offer: dict[str, Any]) -> None:
        if Run.stopping:
            return
        if offer["offer_id"] in self.closed:
            self.closed.discard(offer["offer_id"])
            return  # taken by another artisan (or expired) while this one hesitated
        if random.random() < DECLINE_SHARE:
            self.send({"type": "offer.decline", "offer_id": offer["offer_id"]})
            return
        # The first accept of a job (with a batch, the later ones lose the race).
        ACCEPT_SENT.setdefault(offer["intervention"]["id"], time.perf_counter())
        self.accepting.add(offer["offer_id"])
        self.send({"type": "offer.accept", "offer_id": offer["offer_id"]})

    def work(self, job_id: str) -> None:
        for status in ("EN_ROUTE", "ARRIVED", "IN_PROGRESS", "COMPLETED"):
            gevent.sleep(WORK_S)
            if Run.stopping:
                return
            body: dict[str, Any] = {"status": status}
            if status == "IN_PROGRESS":
                body["start_code"] = START_CODES.pop(job_id, None)
                if body["start_code"] is None:
                    return  # the client gave up on it (cancelled or not tracked here)
            name = f"/interventions/[id]/status {status}"
            for attempt in range(CONNECT_ATTEMPTS):
                answer, ms, error = self.http.send(
                    "POST", f"/interventions/{job_id}/status", json=body, headers=self.auth()
                )
                if answer is None:  # no answer at all: status 0, as FastHttpSession says
                    self.http.report("POST", name, ms, 0, error)
                    break
                if answer.status == 409:
                    self.http.report("POST", name, ms, len(answer.body), None)
                    return  # the client cancelled meanwhile
                if answer.status != 503 or attempt + 1 == CONNECT_ATTEMPTS:
                    self.http.report("POST", name, ms, len(answer.body), failure_of(answer))
                    break
                # Shed: work under way is retried by the README's rule, never dropped.
                self.http.report("POST", f"status {status} shed (503), retried", ms, 0, None)
                hint = reconnect.hint_from_headers(answer.headers)
                gevent.sleep(reconnect.delay_s(attempt, hint))


class ClientUser(SocketUser):
    weight = 3
    # With ZENDO_BENCH_CLIENTS set, exactly that many clients; the rest are artisans.
    fixed_count = int(os.environ.get("ZENDO_BENCH_CLIENTS", "0"))

    def on_start(self) -> None:
        self.number = next(_next_client)
        self.profile = CLIENTS[self.number % len(CLIENTS)]
        # job id -> its final status, set by on_frame; one follower greenlet per job.
        self.outcomes: dict[str, gevent.event.AsyncResult] = {}
        self.followers = gevent.pool.Group()
        self.open_socket()
        self.next_request_at: float | None = None
        gevent.sleep(self.wait_time())

    def wait_time(self) -> float:
        """One request every CLIENT_PACING s from the client's own phase: locust spawns
        fixed_count users first, so every client starts within the first second, and each
        takes a random phase, so that the arrivals are independent, like real clients',
        rather than 300 creations at once every CLIENT_PACING s. (locust's
        constant_pacing counts from the user's creation, so it undid that phase: every
        client fired within the same half second.) A client left out of the current
        rate step (benchmarks/locust_steps.py) checks again every second."""
        now = time.perf_counter()
        if not ActiveClients.includes(self.number):
            self.next_request_at = None
            return IDLE_CHECK_S
        if self.next_request_at is None:  # starting, or let in by a step: a new phase
            self.next_request_at = now + random.uniform(0, CLIENT_PACING)
        else:
            self.next_request_at = max(self.next_request_at + CLIENT_PACING, now)
        return max(0.0, self.next_request_at - now)

    @task
    def request(self) -> None:
        """Create a job and hand its following to a greenlet of its own, so that the
        arrivals are open-loop: when the task also followed the job, a job longer than the
        pacing (a decline, a timeout) moved the client's next one to its completion."""
        if not ActiveClients.includes(self.number):
            return
        spot = random.choice(ARTISANS)
        specialty = spot["specialty"] or random.choice(SPECIALTIES)
        body = {
            "specialty": specialty,
            "lat": float(spot["lat"]) + random.uniform(-0.01, 0.01),
            "lon": float(spot["lon"]) + random.uniform(-0.01, 0.01),
            "description": "load test",
        }
        self.create(body, attempt=0)

    def create(self, body: dict[str, Any], attempt: int) -> None:
        """POST the job; shed (503), it is retried by the README's rule in a greenlet of
        its own (the pacing goes on), at most CREATE_ATTEMPTS times in all."""
        sent = time.perf_counter()
        answer, ms, error = self.http.send("POST", "/interventions", json=body, headers=self.auth())
        if answer is None:  # no answer at all (the connection failed): status 0
            self.http.report("POST", "/interventions", ms, 0, error)
            return
        if answer.status == 503:
            # Shed past capacity (CONTRACT §8): an answer, counted in its own row.
            self.http.report("POST", "POST /interventions shed (503 overloaded)", ms, 0, None)
            if attempt + 1 < CREATE_ATTEMPTS:
                hint = reconnect.hint_from_headers(answer.headers)
                delay = reconnect.delay_s(attempt, hint)
                self.followers.spawn(self.retry_create, body, attempt + 1, delay)
            return
        failure = (
            None if answer.status == 201 else HttpError(f"{answer.status}: {answer.text[:200]}")
        )
        self.http.report("POST", "/interventions", ms, len(answer.body), failure)
        if failure is not None:
            return
        job = answer.json()
        job_id = job["id"]
        START_CODES[job_id] = job["start_code"]
        POST_SENT[job_id] = sent
        outcome = self.outcomes.setdefault(job_id, gevent.event.AsyncResult())
        _first_offer_pair(self.environment, job_id)
        self.followers.spawn(self.follow, job_id, sent, outcome)

    def retry_create(self, body: dict[str, Any], attempt: int, delay_s: float) -> None:
        gevent.sleep(delay_s)
        if not Run.stopping and ActiveClients.includes(self.number):
            self.create(body, attempt)

    def follow(self, job_id: str, sent: float, outcome: gevent.event.AsyncResult) -> None:
        try:
            status = outcome.get(timeout=FOLLOW_TIMEOUT_S)
        except gevent.Timeout:
            status = "TIMEOUT"
        finally:
            self.outcomes.pop(job_id, None)
            POST_SENT.pop(job_id, None)
            START_CODES.pop(job_id, None)
            ACCEPT_SENT.pop(job_id, None)  # a losing accept sent after the ASSIGNED frame
        if status not in ("COMPLETED", "UNFULFILLED"):
            record_ws_failure(self.environment, f"job ended {status}", status)
        elif status == "UNFULFILLED":
            record_latency(self.environment, "job UNFULFILLED (count)", sent, sent)

    def on_frame(self, frame: dict[str, Any], received: float) -> None:
        if frame["type"] != "intervention.status":
            return
        job = frame["intervention"]
        if job["status"] == "ASSIGNED" and job["id"] in ACCEPT_SENT:
            record_latency(
                self.environment,
                "accept -> client status frame",
                ACCEPT_SENT.pop(job["id"]),
                received,
            )
        if job["status"] in ("COMPLETED", "UNFULFILLED", "CANCELLED"):
            # A status frame can beat the POST's answer: the result is created by
            # whichever of the two comes first.
            self.outcomes.setdefault(job["id"], gevent.event.AsyncResult()).set(job["status"])

    def on_stop(self) -> None:
        self.followers.kill(block=False)  # jobs still open when the run ends are not failures
        super().on_stop()


class AdminUser(User):
    weight = 1
    fixed_count = 1
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        self.http = LeanHttp(self.environment, self.host or "")
        email = os.environ.get("ZENDO_BENCH_ADMIN_EMAIL")
        password = os.environ.get("ZENDO_BENCH_ADMIN_PASSWORD")
        self.token = None
        if not (email and password):
            return
        for attempt in range(CONNECT_ATTEMPTS):  # the server may not listen yet, or shed
            answer = self.http.request(
                "POST", "/auth/login", json={"email": email, "password": password}
            )
            if answer is not None and answer.status == 200:
                self.token = answer.json()["access_token"]
                return
            if answer is not None and answer.status != 503:
                return  # a wrong password is not retried (the failure is in the table)
            hint = reconnect.hint_from_headers(answer.headers if answer else None)
            gevent.sleep(reconnect.delay_s(attempt, hint))

    @task
    def match(self) -> None:
        if self.token is None:
            return
        spot = random.choice(ARTISANS)
        self.http.request(
            "GET",
            f"/admin/match?lat={spot['lat']}&lon={spot['lon']}&specialty={spot['specialty']}&k=10",
            headers={"Authorization": f"Bearer {self.token}"},
            name="/admin/match",
        )

    def on_stop(self) -> None:
        self.http.close()


@events.test_start.add_listener
def _check_seed(environment: Environment, **_kwargs: Any) -> None:
    if not ARTISANS or not CLIENTS:
        raise RuntimeError("set ZENDO_SEED_FILE to a `zendo seed` JSONL file with both roles")


LAG_PROBE_S = 0.01


@events.test_start.add_listener
def _probe_own_loop_lag(environment: Environment, **_kwargs: Any) -> None:
    """How late a 10 ms timer fires in this process: the share of every LATENCY row that
    is the load generator's own scheduling (a frame that reached locust's socket waits
    that long for its greenlet). Reported as the row `locust loop lag (10 ms timer)`."""

    def probe() -> None:
        while True:
            started = time.perf_counter()
            gevent.sleep(LAG_PROBE_S)
            ended = time.perf_counter()
            record_latency(
                environment, "locust loop lag (10 ms timer)", started + LAG_PROBE_S, ended
            )

    gevent.spawn(probe)
