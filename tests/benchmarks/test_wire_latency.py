"""wire_latency pairs each request's first packet with its answer's, per connection."""

from __future__ import annotations

import pytest

from benchmarks.wire_latency import (
    answer_times,
    capture,
    capture_filter,
    report,
    route_of,
    span_s,
)

JOB = "18bb7d43-ef91-41c8-995e-b0314ab19f50"


def _packet(t: float, sport: int, dport: int, first_line: str) -> list[str]:
    """One packet as `tcpdump -nn -tt -A` prints it: a header line (on port 8080 it names
    the HTTP line too, elsewhere not), then its payload after the headers' bytes."""
    decoded = f": HTTP: {first_line}" if 8080 in (sport, dport) else ""
    return [
        f"{t:.6f} IP 127.0.0.1.{sport} > 127.0.0.1.{dport}: Flags [P.], seq 1:200, ack 1, "
        f"win 64, options [nop,nop,TS val 1 ecr 2], length 199{decoded}",
        "E..3..@.@..<...........t..1.w......@.(.....",
        f".N?.kJ..{first_line}",
        "Content-Type: application/json",
    ]


def test_requests_and_answers_are_paired_per_connection_and_timed_in_ms() -> None:
    lines = [
        *_packet(100.000, 40001, 8080, f"POST /interventions/{JOB}/status HTTP/1.1"),
        *_packet(100.001, 40002, 8080, "POST /interventions HTTP/1.1"),
        *_packet(100.003, 8080, 40002, "HTTP/1.1 503 Service Unavailable"),
        *_packet(100.020, 8080, 40001, "HTTP/1.1 200 OK"),
        *_packet(100.030, 8080, 40003, "HTTP/1.1 200 OK"),  # its request was not captured
        *_packet(100.040, 40002, 8080, "POST /interventions HTTP/1.1"),
        *_packet(100.050, 8080, 40002, "HTTP/1.1 201 Created"),
        *_packet(100.060, 40004, 8080, f"GET /interventions/{JOB}?view=client HTTP/1.1"),
        *_packet(100.062, 8080, 40004, "HTTP/1.1 200 OK"),
        *_packet(100.070, 40005, 5432, "POST /other-port HTTP/1.1"),  # not the server's
        *_packet(100.080, 5432, 40005, "HTTP/1.1 200 OK"),
    ]
    times = answer_times(lines, 8080)
    assert times.keys() == {
        ("POST", "/interventions/{id}/status", "200"),
        ("POST", "/interventions", "503"),
        ("POST", "/interventions", "201"),
        ("GET", "/interventions/{id}", "200"),
    }
    assert times[("POST", "/interventions/{id}/status", "200")] == [pytest.approx(20.0)]
    assert times[("POST", "/interventions", "503")] == [pytest.approx(2.0)]
    assert times[("POST", "/interventions", "201")] == [pytest.approx(10.0)]
    assert times[("GET", "/interventions/{id}", "200")] == [pytest.approx(2.0)]
    (status_line,) = [line for line in report(times, seconds=1.0) if "/status" in line]
    assert status_line.split()[:4] == ["POST", "/interventions/{id}/status", "200", "1.0/s"]
    assert "p99   20.0" in status_line
    assert answer_times(lines, 5432) == {("POST", "/other-port", "200"): [pytest.approx(10.0)]}


def test_routes_hide_ids_and_queries_and_the_filter_names_every_method() -> None:
    assert route_of(f"/offers/{JOB}/accept?x=1") == "/offers/{id}/accept"
    assert route_of("/healthz") == "/healthz"
    bpf = capture_filter(8080)
    assert bpf.startswith("tcp port 8080 and (")
    for word in (b"GET ", b"POST", b"PUT ", b"PATC", b"DELE", b"HTTP"):
        assert f"0x{word.hex()}" in bpf


def test_lines_that_are_no_packet_and_packets_that_are_no_http_are_skipped() -> None:
    lines = [
        "tcpdump: verbose output suppressed, use -v[v]... for full protocol decode",
        "listening on lo, link-type EN10MB (Ethernet), snapshot length 200 bytes",
        "1796564289.5 IP 127.0.0.1.40001 > 127.0.0.1.8080: Flags [.], ack 1, length 0",
        *_packet(100.000, 40001, 8080, "POST /interventions HTTP/1.1"),
        "1796564290 IP garbage without a port",
        "",
        *_packet(100.004, 8080, 40001, "\x81\x7e binary frame"),  # back, but no answer line
        *_packet(100.009, 8080, 40001, "HTTP/1.1 201 Created"),  # not paired: nothing pending
        "12 packets captured",
    ]
    assert answer_times(lines, 8080) == {}
    assert span_s(lines) == pytest.approx(1796564289.5 - 100.0)
    assert span_s(["no packet at all"]) == 0.0
    assert report({}, 1.0) == []


def test_a_capture_tcpdump_cannot_start_says_why() -> None:
    with pytest.raises(SystemExit, match=r"tcpdump ended early: .*no-such-interface"):
        capture(8080, 5.0, "no-such-interface")


def test_a_capture_without_tcpdump_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SystemExit, match=r"tcpdump not found .*apt-get install tcpdump"):
        capture(8080, 1.0, "lo")
