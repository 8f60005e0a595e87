"""Artisan id encoding: canonical UUID strings are stored as two int64 words.

A canonical UUID (36 chars, lowercase hex, hyphens at 8/13/18/23) is stored
as its 128-bit value split in two words, each offset by 2**63 so that signed
int64 comparison equals the unsigned (and therefore the string) order.  Any
other string id ("kind 1") gets a sequential side number kept in two Python
dicts; that path is slower and costs ~200 bytes per id, which is fine because
production ids are UUIDs.
"""

from __future__ import annotations

from typing import Final

_OFF: Final = 1 << 63
_M64: Final = (1 << 64) - 1

KIND_UUID: Final = 0
KIND_SIDE: Final = 1


def parse_uuid(s: str) -> tuple[int, int] | None:
    """Return the encoded (hi, lo) words of a canonical UUID string, else None."""
    if len(s) == 36 and s[8] == "-" and s[13] == "-" and s[18] == "-" and s[23] == "-":
        h = s.replace("-", "")
        try:
            v = int(h, 16)
        except ValueError:
            return None
        if f"{v:032x}" == h:  # rejects upper case, '_', '+', whitespace, 0x...
            return (v >> 64) - _OFF, (v & _M64) - _OFF
    return None
