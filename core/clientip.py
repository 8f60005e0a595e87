"""The client's address, for per-address limits: the peer, or, when the peer is a
trusted proxy (ZENDO_TRUSTED_PROXIES), what X-Forwarded-For says.

X-Forwarded-For is read from the right: each trusted proxy appends the address it got
the request from, so the rightmost address that is not a trusted proxy is the client.
Anything left of it was written by the client itself and is never believed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web

from core.settings import IPNetwork

UNKNOWN = "unknown"


def _trusted(address: str, proxies: Sequence[IPNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in net for net in proxies)


def client_ip(request: web.BaseRequest, proxies: Sequence[IPNetwork]) -> str:
    peer = request.remote or UNKNOWN
    if not proxies or not _trusted(peer, proxies):
        return peer
    hops = [
        hop.strip()
        for header in request.headers.getall("X-Forwarded-For", [])
        for hop in header.split(",")
    ]
    for hop in reversed(hops):
        if not hop:
            continue
        if not _trusted(hop, proxies):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # junk from a client behind the proxy: count it as the proxy
    return peer
