"""Transports: how frames travel between the host and a pen.

``base`` defines the :class:`~scalppen.transports.base.Transport` protocol and the
errors; one module per transport: ``ble`` (bleak), ``serial`` (pyserial),
``loopback`` (in memory). Import a transport's module to use it, so a missing
optional dependency only matters for the transport that needs it.
"""

from scalppen.transports.base import (
    AuthenticationError,
    ConnectError,
    ExtraMissing,
    LinkLost,
    NotPaired,
    PairingFailed,
    Transport,
    TransportError,
    TransportTimeout,
)

__all__ = [
    "AuthenticationError",
    "ConnectError",
    "ExtraMissing",
    "LinkLost",
    "NotPaired",
    "PairingFailed",
    "Transport",
    "TransportError",
    "TransportTimeout",
]
