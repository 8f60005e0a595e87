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
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket

from aiohttp import web

log = logging.getLogger("zendo.listener")

# Descriptor or memory exhaustion: the connections stay queued in the kernel and the site
# stops watching its socket for `RETRY_AFTER_S` (it stays readable: watching it would
# spin the loop and flood the log), as asyncio's own server does.
_RESOURCE_ERRORS = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))
RETRY_AFTER_S = 1.0


class MultiAcceptSite(web.BaseSite):
    __slots__ = ("_accepts_per_wake", "_bound", "_host", "_port", "_reuse_port", "_sock", "_tasks")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        backlog: int = 4096,
        accepts_per_wake: int = 256,
        reuse_port: bool = False,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._host = host
        self._port = port
        self._reuse_port = reuse_port
        self._accepts_per_wake = accepts_per_wake
        self._sock: socket.socket | None = None
        self._tasks: set[asyncio.Task[object]] = set()
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
        factory = self._runner.server
        assert factory is not None
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
            task = loop.create_task(_adopt(loop, factory, conn))
            self._tasks.add(task)
            task.add_done_callback(self._adopted)

    def _adopted(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The peer reset before the transport was made: nothing to serve.
            log.debug("could not adopt a connection: %r", task.exception())

    async def stop(self) -> None:
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await super().stop()


async def _adopt(
    loop: asyncio.AbstractEventLoop, factory: web.Server, conn: socket.socket
) -> object:
    try:
        return await loop.connect_accepted_socket(factory, conn)
    except BaseException:
        conn.close()
        raise
