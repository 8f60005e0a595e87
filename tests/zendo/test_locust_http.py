"""The locustfile's lean HTTP client (benchmarks/locust_http.py) against a real socket
server, in a fresh interpreter (it runs under gevent, as in locust)."""

from __future__ import annotations

from tests.zendo.test_locustfile import _python_lines

_SERVER = """
import json
import gevent
from gevent.server import StreamServer
from locust.env import Environment
from benchmarks.locust_http import LeanHttp

seen_requests = []   # (connection number, head, body)
connections = []

def answer(sock, body, extra=b"", chunked=False):
    if chunked:
        half = len(body) // 2
        payload = b"%x\\r\\n%s\\r\\n%x\\r\\n%s\\r\\n0\\r\\n\\r\\n" % (
            half, body[:half], len(body) - half, body[half:])
        head = b"HTTP/1.1 200 OK\\r\\nTransfer-Encoding: chunked\\r\\n" + extra + b"\\r\\n"
    else:
        payload = body
        head = b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\n" % len(body) + extra + b"\\r\\n"
    sock.sendall(head + payload)

def handle(sock, _addr):
    number = len(connections)
    connections.append(sock)
    buf = b""
    while True:
        while b"\\r\\n\\r\\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                return
            buf += chunk
        head, _, buf = buf.partition(b"\\r\\n\\r\\n")
        lines = head.decode().split("\\r\\n")
        headers = {k.lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
        length = int(headers.get("content-length", 0))
        while len(buf) < length:
            buf += sock.recv(65536)
        body, buf = buf[:length], buf[length:]
        seen_requests.append((number, lines[0], headers, body))
        path = lines[0].split()[1]
        if path == "/chunked":
            answer(sock, b'{"chunked": true}', chunked=True)
        elif path == "/shed":
            sock.sendall(b"HTTP/1.1 503 Service Unavailable\\r\\nContent-Length: 2\\r\\n"
                         b"Retry-After: 1\\r\\nConnection: close\\r\\n\\r\\n{}")
            sock.close()
            return
        elif path == "/until-close":  # no length: the answer ends with the connection
            sock.sendall(b"HTTP/1.1 200 OK\\r\\n\\r\\nall of it")
            sock.close()
            return
        elif path == "/hang-up":
            sock.close()   # the request read, no answer
            return
        elif path == "/split":
            sock.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Le")
            gevent.sleep(0.05)
            sock.sendall(b"ngth: 11\\r\\n\\r\\nhello ")
            gevent.sleep(0.05)
            sock.sendall(b"world")
        else:
            answer(sock, json.dumps({"echo": body.decode(), "path": path}).encode())

server = StreamServer(("127.0.0.1", 0), handle)
server.start()
env = Environment()
events = []
env.events.request.add_listener(
    lambda **e: events.append((e["request_type"], e["name"], e["response_length"],
                               type(e["exception"]).__name__ if e["exception"] else None)))
http = LeanHttp(env, f"http://127.0.0.1:{server.server_port}")
"""

_EXCHANGES = (
    _SERVER
    + """
a = http.request("POST", "/things", json={"x": 1}, headers={"Authorization": "Bearer t"},
                 name="things")
print("json", a.status, a.json())
number, line, headers, body = seen_requests[-1]
print("request", line, headers["host"] == f"127.0.0.1:{server.server_port}",
      headers["user-agent"], headers["accept-encoding"],
      headers["authorization"], headers["content-type"], headers["content-length"], body)
print("chunked", http.request("GET", "/chunked").json())
print("split", http.request("GET", "/split").body)
print("one connection", {n for n, *_ in seen_requests} == {0})
shed = http.request("GET", "/shed")
print("shed", shed.status, shed.headers["retry-after"], len(http.idle))
after = http.request("GET", "/after-shed")
print("new connection after close", seen_requests[-1][0])
connections[-1].close()   # the server times out the idle kept-alive connection
gevent.sleep(0.05)
print("after idle close", http.request("GET", "/again").status, seen_requests[-1][0])
print("until close", http.request("GET", "/until-close").body, len(http.idle))
print("hang-up", http.request("POST", "/hang-up", json={}))
print("sent once", sum(line.startswith("POST /hang-up") for _, line, *_ in seen_requests))
for event in events:
    print("event", *event)
"""
)


def test_lean_http_client_speaks_http_1_1_and_reports_each_request() -> None:
    """JSON in and out, chunked and split answers, kept-alive connections reused, a
    `Connection: close` honoured, an idle connection the server closed replaced
    without a failure, a request left unanswered reported as a failure and never sent
    again: each request one locust event, 4xx/5xx and no answer as failures."""
    assert _python_lines(_EXCHANGES) == [
        "json 200 {'echo': '{\"x\":1}', 'path': '/things'}",
        "request POST /things HTTP/1.1 True zendo-locust gzip, deflate Bearer t application/json"
        " 7 b'{\"x\":1}'",
        "chunked {'chunked': True}",
        "split b'hello world'",
        "one connection True",
        "shed 503 1 0",
        "new connection after close 1",
        "after idle close 200 2",
        "until close b'all of it' 0",
        "hang-up None",
        "sent once 1",
        "event POST things 40 None",
        "event GET /chunked 17 None",
        "event GET /split 11 None",
        "event GET /shed 2 HttpError",
        "event GET /after-shed 35 None",
        "event GET /again 30 None",
        "event GET /until-close 9 None",
        "event POST /hang-up 0 HttpError",
    ]


_BAD_ANSWER = (
    _SERVER.replace(
        "        else:\n            answer(sock, json.dumps",
        "        elif path == '/garbage':\n"
        "            sock.sendall(b'SMTP ready\\r\\n\\r\\n')\n"
        "        else:\n            answer(sock, json.dumps",
    )
    + """
print("garbage", http.request("GET", "/garbage"))
print("event", *events[-1])
print("fine after", http.request("GET", "/fine").status)
"""
)


def test_lean_http_client_reports_an_answer_it_cannot_parse_as_a_failure() -> None:
    """Something that is not HTTP is a failure with no status, and the next request
    goes on a new connection."""
    assert _python_lines(_BAD_ANSWER) == [
        "garbage None",
        "event GET /garbage 0 HttpError",
        "fine after 200",
    ]
