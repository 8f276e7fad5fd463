"""The protocol's own error: every decoder failure is a ``ProtocolError`` with a code."""

from __future__ import annotations

from scalppen_protocol.codes import ErrorCode


class ProtocolError(Exception):
    """A frame, fragment or serial packet that breaks the protocol.

    Attributes:
        code: the defined error code (``ErrorCode``), also sent in a NACK.
        msg_type: the message type when the header could be read, else None.
        seq: the sequence number when the header could be read, else None.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        msg_type: int | None = None,
        seq: int | None = None,
    ) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.msg_type = msg_type
        self.seq = seq
