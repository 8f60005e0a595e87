"""The server's answer times as the network sees them, apart from the load generator's.

    sudo .venv/bin/python -m benchmarks.wire_latency [--port 8080] [--seconds 30]

A load generator on the same cores times each request from before its own send to after
its own read: when the machine is full it also waits for a CPU itself, and reports that
wait as the server's. This captures the loopback traffic to `--port` with tcpdump
(Debian's `tcpdump`; root or CAP_NET_RAW) for `--seconds` and times, on each
connection, from the packet that starts a request (its method) to the packet that
starts the answer (`HTTP/1.1`): the wait for the server's process, its work and its
write, and nothing of the client's. Prints p50 / p90 / p99 / max by method, route
(ids as `{id}`) and status. Clients send one request at a time on a connection (no
pipelining), which is what pairs a request with the next answer; WebSocket frames after
a 101 start with neither, and are not counted. `--from-file` reads a saved
`tcpdump -nn -tt -A` text instead of capturing (rates over the span it covers).
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Final

from benchmarks.arguments import positive_float, readable_file, tcp_port

METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE")
_HEADER: Final = re.compile(
    r"^(?P<t>\d+\.\d+) IP6? (?P<src>\S+)\.(?P<sport>\d+) > (?P<dst>\S+)\.(?P<dport>\d+): "
)
# The start of a request or of an answer in a packet's printed payload (`-A` prints the
# IP and TCP headers' bytes before it, as text).
_REQUEST: Final = re.compile(rf"({'|'.join(METHODS)}) (\S+) HTTP/1\.[01]")
_ANSWER: Final = re.compile(r"HTTP/1\.[01] (\d{3})")
_ID: Final = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)

Key = tuple[str, str, str]  # method, route, status
_PAYLOAD_LINES: Final = 3  # a packet's payload lines searched for its first line


def capture_filter(port: int) -> str:
    """tcpdump's filter: TCP segments to or from `port` whose payload starts with a
    method or `HTTP` (the first four bytes past the TCP header)."""
    payload = "tcp[((tcp[12:1] & 0xf0) >> 2):4]"
    words = [m[:4].ljust(4) for m in METHODS] + ["HTTP"]
    starts = " or ".join(f"{payload} = 0x{w.encode().hex()}" for w in words)
    return f"tcp port {port} and ({starts})"


def route_of(target: str) -> str:
    """A request target as its route: no query string, ids as `{id}`."""
    return _ID.sub("{id}", target.split("?", 1)[0])


def packets(lines: Iterable[str]) -> Iterator[tuple[re.Match[str], str]]:
    """`tcpdump -nn -tt -A` text as (header match, printed payload) per packet."""
    header: re.Match[str] | None = None
    payload: list[str] = []
    for raw in lines:
        m = _HEADER.match(raw)
        if m is None:
            if header is not None and len(payload) < _PAYLOAD_LINES:
                payload.append(raw)
            continue
        if header is not None:
            yield header, "\n".join(payload)
        header, payload = m, []
    if header is not None:
        yield header, "\n".join(payload)


def span_s(lines: Iterable[str]) -> float:
    """Seconds from the first packet of a `tcpdump -nn -tt` text to its last (0 if none)."""
    stamps = [float(m["t"]) for m in map(_HEADER.match, lines) if m is not None]
    return max(stamps) - min(stamps) if stamps else 0.0


def answer_times(lines: Iterable[str], port: int) -> dict[Key, list[float]]:
    """Milliseconds from each request's first packet to its answer's, by (method, route,
    status), from `tcpdump -nn -tt -A` text lines."""
    pending: dict[tuple[str, str], tuple[float, str, str]] = {}
    times: dict[Key, list[float]] = defaultdict(list)
    server = str(port)
    for header, payload in packets(lines):
        if header["dport"] == server:
            request = _REQUEST.search(payload)
            if request is not None:
                sent = (float(header["t"]), request[1], route_of(request[2]))
                pending[(header["src"], header["sport"])] = sent
        elif header["sport"] == server:
            answer = _ANSWER.search(payload)
            # any packet back ends the pairing: an answer not recognised is not timed, and
            # neither is its request (nor paired with the next answer)
            waiting = pending.pop((header["dst"], header["dport"]), None)
            if answer is not None and waiting is not None:
                at, method, route = waiting
                times[(method, route, answer[1])].append((float(header["t"]) - at) * 1e3)
    return dict(times)


def quantile(sorted_ms: list[float], q: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))]


def report(times: dict[Key, list[float]], seconds: float) -> list[str]:
    out = []
    for (method, route, status), ms in sorted(times.items(), key=lambda kv: -len(kv[1])):
        ms = sorted(ms)
        out.append(
            f"{method:<6} {route:<40} {status}  {len(ms) / seconds:7.1f}/s  p50 "
            f"{quantile(ms, 0.5):6.1f}  p90 {quantile(ms, 0.9):6.1f}  p99 "
            f"{quantile(ms, 0.99):6.1f}  max {ms[-1]:6.1f} ms"
        )
    return out


def capture(port: int, seconds: float, interface: str) -> list[str]:
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        sys.exit("wire_latency: tcpdump not found (Debian: apt-get install tcpdump)")
    cmd = [tcpdump, "-i", interface, "-nn", "-tt", "-l", "-s", "200", "-A", capture_filter(port)]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace"
    )
    try:
        _out, err = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:  # the capture's normal end
        proc.send_signal(signal.SIGINT)
        out, _err = proc.communicate(timeout=10)
        return out.splitlines()
    sys.exit(f"wire_latency: tcpdump ended early: {err.strip()[-300:]}")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--port", type=tcp_port, default=8080)
    ap.add_argument("--seconds", type=positive_float, default=30.0)
    ap.add_argument("--interface", default="lo")
    ap.add_argument("--from-file", type=readable_file, help="a saved `tcpdump -nn -tt -A` text")
    args = ap.parse_args()
    if args.from_file:
        with open(args.from_file, errors="replace") as fh:
            lines = fh.read().splitlines()
        seconds = span_s(lines)
    else:
        lines = capture(args.port, args.seconds, args.interface)
        seconds = args.seconds
    times = answer_times(lines, args.port)
    print(f"# wire_latency: port {args.port}, request's first packet to answer's, ms")
    print("\n".join(report(times, max(seconds, 1e-3))) or "no request answered")


if __name__ == "__main__":
    main()
