"""Client -> server frame schemas (CONTRACT §5), validated with msgspec.

Server -> client frames are plain dicts encoded with orjson (see `session.encode`).
"""

from __future__ import annotations

import re
import uuid
from typing import Literal

import msgspec


class _Frame(msgspec.Struct, tag_field="type", frozen=True):
    pass


class AuthFrame(_Frame, tag="auth", frozen=True):
    token: str


class LocationFrame(_Frame, tag="location", frozen=True):
    lat: float
    lon: float
    ts: float  # epoch ms; a float is tolerated and truncated
    accuracy: float | None = None
    heading: float | None = None
    speed: float | None = None


class PresenceFrame(_Frame, tag="presence", frozen=True):
    status: Literal["ONLINE", "OFFLINE"]


class OfferAcceptFrame(_Frame, tag="offer.accept", frozen=True):
    offer_id: uuid.UUID


class OfferDeclineFrame(_Frame, tag="offer.decline", frozen=True):
    offer_id: uuid.UUID


class OpsSubscribeFrame(_Frame, tag="ops.subscribe", frozen=True):
    pass


class OpsUnsubscribeFrame(_Frame, tag="ops.unsubscribe", frozen=True):
    pass


ClientFrame = (
    AuthFrame
    | LocationFrame
    | PresenceFrame
    | OfferAcceptFrame
    | OfferDeclineFrame
    | OpsSubscribeFrame
    | OpsUnsubscribeFrame
)
_decoder: msgspec.json.Decoder[ClientFrame] = msgspec.json.Decoder(ClientFrame)
_TYPE_PATH = re.compile(r"at `\$\.type`")


class BadFrame(Exception):
    """A frame that is not valid JSON or does not match any schema."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def decode_frame(raw: bytes | str) -> ClientFrame:
    try:
        return _decoder.decode(raw)
    except msgspec.ValidationError as exc:
        text = str(exc)
        if "Number out of range" in text:
            # JSON numbers like 1e999 decode to infinity: a non-finite fix, counted as such.
            raise BadFrame("out_of_range", text) from exc
        if _TYPE_PATH.search(text) or "missing required field `type`" in text:
            raise BadFrame("unknown_type", text) from exc
        raise BadFrame("invalid_frame", text) from exc
    except msgspec.DecodeError as exc:
        raise BadFrame("malformed_json", f"Malformed JSON: {exc}") from exc
