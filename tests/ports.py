"""A free TCP port for a server a test starts in another process."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port the kernel just gave out and took back: free now, though another process
    may take it before the server binds it (the tests' servers fail loudly if so)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
