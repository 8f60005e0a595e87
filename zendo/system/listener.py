"""A TCP site that accepts every waiting connection when the listening socket wakes.

uvloop's listener (libuv) accepts ONE connection per loop turn. Under load a turn
takes 5-10 ms, so the server accepts 100-200 connections/s however many wait: in the
dispatch benchmark new connections sat in the kernel's accept queue for up to a second
(their first request with them), and 10,000 apps reconnecting after a deploy would take
a minute and more to be let in. This site owns the listening socket and accepts up to
`accepts_per_wake` connections each time it is readable, then hands each one to the
loop (`connect_accepted_socket`) with the same aiohttp protocol factory as `TCPSite`.
The runner's `addresses` does not list it (aiohttp reads them off an asyncio Server,
which this site has none of): its `port` property gives the bound port, as `TCPSite`'s.
With `reuse_port` the socket is bound with SO_REUSEPORT, so that several processes
(`zendo serve --workers N`) listen on one port and the kernel spreads connections.
A `screen` sees each accepted connection first: True when it answered the connection
itself (and closed it): aiohttp never sees it (zendo/system/handshake_screen.py refuses
a reconnect storm's handshakes there, at a fraction of a request's cost); False: the
connection goes to aiohttp; None: it cannot tell yet (the request has not arrived):
the site asks again once the connection is readable, and hands it to aiohttp if it
stays silent `SCREEN_WAIT_S` (aiohttp's own timeouts take over from there). A
`protocol_factory` replaces the runner's own (zendo/system/request_screen.py: aiohttp's
request handler, which refuses a new job in the turn that reads it while the process
sheds load).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable

from aiohttp import web

log = logging.getLogger("zendo.listener")

# Descriptor or memory exhaustion: the connections stay queued in the kernel and the site
# stops watching its socket for `RETRY_AFTER_S` (it stays readable: watching it would
# spin the loop and flood the log), as asyncio's own server does.
_RESOURCE_ERRORS = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))
RETRY_AFTER_S = 1.0
# How long a connection the screen cannot tell yet waits for its first bytes.
SCREEN_WAIT_S = 1.0

# A connection's verdict: answered here (True), aiohttp's (False), or not yet (None).
Screen = Callable[[socket.socket], bool | None]


class MultiAcceptSite(web.BaseSite):
    __slots__ = (
        "_accepts_per_wake",
        "_bound",
        "_host",
        "_port",
        "_protocol_factory",
        "_reuse_port",
        "_screen",
        "_sock",
        "_tasks",
        "_unscreened",
    )

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        backlog: int = 4096,
        accepts_per_wake: int = 256,
        reuse_port: bool = False,
        screen: Screen | None = None,
        protocol_factory: Callable[[], asyncio.Protocol] | None = None,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._host = host
        self._port = port
        self._reuse_port = reuse_port
        self._accepts_per_wake = accepts_per_wake
        self._screen = screen
        self._protocol_factory = protocol_factory
        self._sock: socket.socket | None = None
        self._tasks: set[asyncio.Task[object]] = set()
        # connections the screen will look at again, and when they go to aiohttp anyway
        self._unscreened: dict[socket.socket, asyncio.TimerHandle] = {}
        self._bound: tuple[str, int] | None = None

    @property
    def name(self) -> str:
        host, port = self._bound or (self._host, self._port)
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        assert self._bound is not None, "site not started"
        return self._bound[1]

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        family, _, _, _, address = socket.getaddrinfo(
            self._host, self._port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.create_server(
            address, family=family, backlog=self._backlog, reuse_port=self._reuse_port
        )
        sock.setblocking(False)
        self._sock = sock
        self._bound = sock.getsockname()[:2]
        self._watch(loop)

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._sock is not None:  # not stopped meanwhile
            loop.add_reader(self._sock.fileno(), self._accept_waiting, loop)

    def _accept_waiting(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self._sock is not None
        for _ in range(self._accepts_per_wake):
            try:
                conn, _peer = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # the client gave up while queued: next one
            except OSError as exc:
                if exc.errno not in _RESOURCE_ERRORS:
                    raise
                log.warning("accept: %s; retrying in %.1f s", exc, RETRY_AFTER_S)
                loop.remove_reader(self._sock.fileno())
                loop.call_later(RETRY_AFTER_S, self._watch, loop)
                return
            conn.setblocking(False)
            if self._screen is None:
                self._hand_over(loop, conn)
                continue
            verdict = self._verdict(conn)
            if verdict is None:
                loop.add_reader(conn.fileno(), self._look_again, loop, conn)
                self._unscreened[conn] = loop.call_later(
                    SCREEN_WAIT_S, self._give_up_screening, loop, conn
                )
            elif not verdict:
                self._hand_over(loop, conn)

    def _verdict(self, conn: socket.socket) -> bool | None:
        assert self._screen is not None
        try:
            return self._screen(conn)
        except Exception:  # a faulty screen must not stop the site accepting
            log.exception("the connection screen failed; the connection goes to aiohttp")
            return conn.fileno() < 0  # closed by the screen before it failed: nothing to serve

    def _look_again(self, loop: asyncio.AbstractEventLoop, conn: socket.socket) -> None:
        # unwatched first: the screen may close the socket (its descriptor then goes to
        # the next connection, which a stale reader would be called for)
        loop.remove_reader(conn.fileno())
        verdict = self._verdict(conn)
        if verdict is None:  # still incomplete: until the timer
            loop.add_reader(conn.fileno(), self._look_again, loop, conn)
            return
        self._unscreened.pop(conn).cancel()
        if not verdict:
            self._hand_over(loop, conn)

    def _give_up_screening(self, loop: asyncio.AbstractEventLoop, conn: socket.socket) -> None:
        del self._unscreened[conn]
        loop.remove_reader(conn.fileno())
        self._hand_over(loop, conn)

    def _hand_over(self, loop: asyncio.AbstractEventLoop, conn: socket.socket) -> None:
        factory = self._protocol_factory or self._runner.server
        assert factory is not None
        task = loop.create_task(_adopt(loop, factory, conn))
        self._tasks.add(task)
        task.add_done_callback(self._adopted)

    def _adopted(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The peer reset before the transport was made: nothing to serve.
            log.debug("could not adopt a connection: %r", task.exception())

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._sock is not None:
            loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        for conn, handle in self._unscreened.items():
            handle.cancel()
            loop.remove_reader(conn.fileno())
            conn.close()
        self._unscreened.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await super().stop()


async def _adopt(
    loop: asyncio.AbstractEventLoop,
    factory: Callable[[], asyncio.Protocol],
    conn: socket.socket,
) -> object:
    try:
        return await loop.connect_accepted_socket(factory, conn)
    except BaseException:
        conn.close()
        raise
