"""Frame encoding and decoding on the host (construct).

A frame is a 6-byte little-endian header followed by the payload::

    u8 version | u8 type | u16 seq | u16 payload length | payload

Responses carry the sequence number of the request they answer; events carry the
pen's own event counter.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from construct import Construct, ConstructError, StreamError

from scalppen_protocol.codes import HEADER_SIZE, MAX_FRAME, PROTOCOL_VERSION, ErrorCode, MsgType
from scalppen_protocol.errors import ProtocolError
from scalppen_protocol.messages import CATALOGUE, Text

_HEADER: Final = struct.Struct("<BBHH")

_COMPILED: dict[MsgType, Construct] = {}


def _payload_def(msg_type: MsgType, compiled: bool) -> Construct:
    if not compiled:
        return CATALOGUE[msg_type]
    found = _COMPILED.get(msg_type)
    if found is None:
        found = CATALOGUE[msg_type].compile()
        _COMPILED[msg_type] = found
    return found


def plain(value: Any) -> Any:
    """Turn construct containers into plain dicts and lists (recursively)."""
    if isinstance(value, dict):
        return {
            k: (plain(v) if isinstance(v, dict | list) else v)
            for k, v in value.items()
            if k[0] != "_"
        }
    if isinstance(value, list):
        return [plain(v) if isinstance(v, dict | list) else v for v in value]
    return value


@dataclass(frozen=True)
class Frame:
    """A decoded frame."""

    msg_type: MsgType
    seq: int
    fields: dict[str, Any] = field(default_factory=dict)


def encode_payload(msg_type: MsgType, fields: dict[str, Any] | None = None) -> bytes:
    """Build the payload of ``msg_type`` from ``fields``.

    Raises:
        ProtocolError: MALFORMED when a field is missing or out of range.
    """
    try:
        return bytes(CATALOGUE[MsgType(msg_type)].build(fields or {}))
    except (ConstructError, KeyError, ValueError, TypeError, UnicodeError) as exc:
        raise ProtocolError(
            ErrorCode.MALFORMED, f"cannot encode {MsgType(msg_type).name}: {exc}"
        ) from exc


def encode_frame(msg_type: MsgType | int, seq: int, fields: dict[str, Any] | None = None) -> bytes:
    """Encode one frame (header + payload).

    Raises:
        ProtocolError: MALFORMED for bad fields, OVERSIZE above ``MAX_FRAME``.
    """
    mt = MsgType(msg_type)
    if not 0 <= seq <= 0xFFFF:
        raise ProtocolError(ErrorCode.MALFORMED, f"sequence number {seq} out of range 0..65535")
    payload = encode_payload(mt, fields)
    if HEADER_SIZE + len(payload) > MAX_FRAME:
        raise ProtocolError(
            ErrorCode.OVERSIZE,
            f"{mt.name} frame of {HEADER_SIZE + len(payload)} bytes > {MAX_FRAME}",
        )
    return _HEADER.pack(PROTOCOL_VERSION, mt, seq, len(payload)) + payload


def decode_header(data: bytes) -> tuple[int, int, int]:
    """Check a frame's header and length; return (msg_type, seq, payload_length).

    Raises:
        ProtocolError: TRUNCATED, OVERSIZE, BAD_VERSION or MALFORMED.
    """
    if len(data) > MAX_FRAME:
        raise ProtocolError(ErrorCode.OVERSIZE, f"frame of {len(data)} bytes > {MAX_FRAME}")
    if len(data) < HEADER_SIZE:
        raise ProtocolError(ErrorCode.TRUNCATED, f"frame of {len(data)} bytes < header")
    version, msg_type, seq, length = _HEADER.unpack_from(data)
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            ErrorCode.BAD_VERSION,
            f"protocol version {version}, expected {PROTOCOL_VERSION}",
            msg_type=msg_type,
            seq=seq,
        )
    if HEADER_SIZE + length > len(data):
        raise ProtocolError(
            ErrorCode.TRUNCATED,
            f"payload {len(data) - HEADER_SIZE} of {length} bytes",
            msg_type=msg_type,
            seq=seq,
        )
    if HEADER_SIZE + length < len(data):
        raise ProtocolError(
            ErrorCode.MALFORMED,
            f"{len(data) - HEADER_SIZE - length} bytes after the payload",
            msg_type=msg_type,
            seq=seq,
        )
    return msg_type, seq, length


def decode_frame(data: bytes, *, compiled: bool = True) -> Frame:
    """Decode one complete frame.

    Args:
        data: the frame bytes (after reassembly or serial deframing).
        compiled: use construct's compiled parsers (faster; same result).

    Raises:
        ProtocolError: with the code for what is wrong; never any other exception.
    """
    data = bytes(data)
    msg_type, seq, length = decode_header(data)
    try:
        mt = MsgType(msg_type)
    except ValueError:
        raise ProtocolError(
            ErrorCode.NOT_SUPPORTED, f"unknown message type 0x{msg_type:02x}",
            msg_type=msg_type, seq=seq,
        ) from None
    payload = data[HEADER_SIZE:]
    size = _fixed_size(mt)
    if size is not None and size != length:
        # Compiled parsers read fixed-size byte fields without checking their length:
        # a short payload gets the reference parser's error (TRUNCATED), a long one
        # is MALFORMED, as in the firmware's codec.
        _parse_checked(mt, payload, msg_type, seq)
        raise ProtocolError(
            ErrorCode.MALFORMED, f"{mt.name}: payload of {length} bytes, expected {size}",
            msg_type=msg_type, seq=seq,
        )
    try:
        parsed, used = _parse(_payload_def(mt, compiled), payload, mt in _WITH_TEXT)
    except Exception:
        # Compiled parsers skip construct's bounds checks: classify the failure with
        # the reference parser, so both paths give the same defined error.
        parsed, used = _parse_checked(mt, payload, msg_type, seq)
    if used != length:
        raise ProtocolError(
            ErrorCode.MALFORMED,
            f"{mt.name}: payload has {length - used} trailing bytes",
            msg_type=msg_type,
            seq=seq,
        )
    # Compiled parsers give Container/ListContainer (dict/list subclasses) without
    # construct's private keys: they are returned as they are, which is what makes
    # log sync fast; the reference parser's containers are converted.
    return Frame(mt, seq, parsed if compiled and not _has_private(parsed) else plain(parsed))


def _has_private(container: dict[str, Any]) -> bool:
    return any(k[0] == "_" for k in container)


class _ExactReads(io.BytesIO):
    """A stream whose short read is an error: a compiled text field (``Text``) reads
    what is left of a payload cut inside it without a word."""

    def read(self, n: int | None = -1) -> bytes:
        got = super().read(n)
        if n is not None and n >= 0 and len(got) != n:
            raise StreamError(f"stream read less than specified amount, expected {n}, "
                              f"found {len(got)}")
        return got


def _parts(c: Construct) -> Iterator[Construct]:
    yield c
    for sub in getattr(c, "subcons", None) or ():
        yield from _parts(sub)
    if hasattr(c, "subcon"):
        yield from _parts(c.subcon)


#: Messages with a text field: parsed from an _ExactReads stream (INFO; the log
#: pages that make up the traffic have none and keep the plain, faster stream).
_WITH_TEXT: Final = frozenset(mt for mt, d in CATALOGUE.items()
                              if any(p is Text for p in _parts(d)))


def _parse(definition: Construct, payload: bytes, exact: bool = False) -> tuple[Any, int]:
    stream = _ExactReads(payload) if exact else io.BytesIO(payload)
    parsed = definition.parse_stream(stream)
    return parsed, stream.tell()


def _parse_checked(mt: MsgType, payload: bytes, msg_type: int, seq: int) -> tuple[Any, int]:
    try:
        return _parse(CATALOGUE[mt], payload)
    except ConstructError as exc:
        code = ErrorCode.TRUNCATED if "stream read less" in str(exc) else ErrorCode.MALFORMED
        raise ProtocolError(code, f"{mt.name}: {exc}", msg_type=msg_type, seq=seq) from None
    except Exception as exc:
        raise ProtocolError(
            ErrorCode.MALFORMED, f"{mt.name}: {exc}", msg_type=msg_type, seq=seq
        ) from None


_SIZES: dict[MsgType, int | None] = {}


def _fixed_size(mt: MsgType) -> int | None:
    """The payload size of a fixed-size message, None for variable ones."""
    if mt not in _SIZES:
        try:
            _SIZES[mt] = int(CATALOGUE[mt].sizeof())
        except ConstructError:
            _SIZES[mt] = None
    return _SIZES[mt]
