"""The pens this laptop knows: name, address, serial, model, permit key, when seen.

:class:`PenRegistry` is the interface; :class:`JsonPenRegistry` keeps the list in
``pens.json`` in the user's configuration directory, readable by the user only
(the file holds permit keys). A session store can implement the same interface
over its own table later.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Final, Protocol

FILE_NAME: Final = "pens.json"
FORMAT_VERSION: Final = 1
ENV_CONFIG_DIR: Final = "SCALPPEN_CONFIG_DIR"


class RegistryError(Exception):
    """The registry file cannot be read or written."""


def config_dir() -> Path:
    """The user's configuration directory for scalppen.

    ``$SCALPPEN_CONFIG_DIR`` if set; else ``%APPDATA%\\scalppen`` on Windows,
    ``~/Library/Application Support/scalppen`` on macOS, and
    ``$XDG_CONFIG_HOME/scalppen`` (default ``~/.config/scalppen``) elsewhere.
    """
    override = os.environ.get(ENV_CONFIG_DIR)
    if override:
        return Path(override)
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "scalppen"


def normalise_address(address: str) -> str:
    """Bluetooth addresses in upper case (macOS UUIDs too); other strings as given."""
    return address.strip().upper()


@dataclass(frozen=True)
class KnownPen:
    """One pen this laptop has paired with.

    Attributes:
        address: Bluetooth address (a UUID on macOS), the key.
        name: what people call it (advertised name by default).
        serial: the pen's serial number (from INFO).
        model: the pen's model (from INFO).
        permit_key: the 32-byte permit key as 64 hex digits ("" if not set).
        paired_at: Unix time of pairing.
        last_seen: Unix time of the last connection (0 = never).
    """

    address: str
    name: str = ""
    serial: str = ""
    model: str = ""
    permit_key: str = ""
    paired_at: int = 0
    last_seen: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "address", normalise_address(self.address))
        key = self.permit_key.lower()
        if key and (len(key) != 64 or any(c not in "0123456789abcdef" for c in key)):
            raise ValueError("permit_key must be 64 hex digits (32 bytes)")
        object.__setattr__(self, "permit_key", key)

    @property
    def key_bytes(self) -> bytes | None:
        """The permit key as bytes, or None when not set."""
        return bytes.fromhex(self.permit_key) if self.permit_key else None

    def __repr__(self) -> str:  # never print the key
        key = "set" if self.permit_key else "unset"
        return (
            f"KnownPen(address={self.address!r}, name={self.name!r}, serial={self.serial!r}, "
            f"model={self.model!r}, permit_key=<{key}>, paired_at={self.paired_at}, "
            f"last_seen={self.last_seen})"
        )


class PenRegistry(Protocol):
    """Known pens, keyed by address."""

    def all(self) -> list[KnownPen]:
        """Every known pen, most recently seen first."""
        ...

    def get(self, address: str) -> KnownPen | None:
        """The pen with this address, if known."""
        ...

    def find(self, text: str) -> KnownPen | None:
        """A pen by address, serial or name (case-insensitive), if exactly one matches."""
        ...

    def save(self, pen: KnownPen) -> None:
        """Add the pen, or replace the entry with its address."""
        ...

    def seen(self, address: str, when: int | None = None) -> KnownPen | None:
        """Record a connection now (or at ``when``); returns the updated entry."""
        ...

    def remove(self, address: str) -> bool:
        """Forget a pen; True if it was known."""
        ...


class JsonPenRegistry:
    """:class:`PenRegistry` over a JSON file (mode 0600, directory 0700).

    Every change rewrites the file atomically (temporary file + rename).

    Args:
        path: the file; by default ``config_dir() / "pens.json"``.
    """

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else config_dir() / FILE_NAME

    # -- file --------------------------------------------------------------------

    def _load(self) -> dict[str, KnownPen]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise RegistryError(f"cannot read {self.path}: {exc}") from exc
        try:
            data = json.loads(text)
            entries = data["pens"] if isinstance(data, dict) else data
            pens = [KnownPen(**_known_fields(e)) for e in entries]
        except (ValueError, KeyError, TypeError) as exc:
            raise RegistryError(f"{self.path} is damaged: {exc}") from exc
        return {p.address: p for p in pens}

    def _store(self, pens: dict[str, KnownPen]) -> None:
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            payload = {"version": FORMAT_VERSION, "pens": [asdict(p) for p in pens.values()]}
            fd, tmp = tempfile.mkstemp(prefix=".pens-", suffix=".json", dir=directory)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    if hasattr(os, "fchmod"):
                        os.fchmod(out.fileno(), 0o600)
                    json.dump(payload, out, indent=2, sort_keys=True)
                    out.write("\n")
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            if hasattr(os, "chmod"):
                os.chmod(self.path, 0o600)
        except OSError as exc:
            raise RegistryError(f"cannot write {self.path}: {exc}") from exc

    # -- PenRegistry -------------------------------------------------------------

    def all(self) -> list[KnownPen]:
        """Every known pen, most recently seen first."""
        return sorted(self._load().values(), key=lambda p: (-p.last_seen, p.address))

    def __iter__(self) -> Iterator[KnownPen]:
        return iter(self.all())

    def get(self, address: str) -> KnownPen | None:
        """The pen with this address, if known."""
        return self._load().get(normalise_address(address))

    def find(self, text: str) -> KnownPen | None:
        """A pen by address, serial or name (case-insensitive), if exactly one matches."""
        pens = self._load()
        wanted = text.strip()
        hit = pens.get(normalise_address(wanted))
        if hit is not None:
            return hit
        for attr in ("serial", "name"):
            matches = [p for p in pens.values() if getattr(p, attr).lower() == wanted.lower()]
            if len(matches) == 1:
                return matches[0]
        return None

    def save(self, pen: KnownPen) -> None:
        """Add the pen, or replace the entry with its address."""
        pens = self._load()
        pens[pen.address] = pen
        self._store(pens)

    def seen(self, address: str, when: int | None = None) -> KnownPen | None:
        """Record a connection now (or at ``when``); returns the updated entry."""
        pens = self._load()
        pen = pens.get(normalise_address(address))
        if pen is None:
            return None
        pen = replace(pen, last_seen=int(time.time()) if when is None else int(when))
        pens[pen.address] = pen
        self._store(pens)
        return pen

    def remove(self, address: str) -> bool:
        """Forget a pen; True if it was known."""
        pens = self._load()
        if pens.pop(normalise_address(address), None) is None:
            return False
        self._store(pens)
        return True


def _known_fields(entry: dict[str, Any]) -> dict[str, Any]:
    names = KnownPen.__dataclass_fields__
    return {k: v for k, v in entry.items() if k in names}
