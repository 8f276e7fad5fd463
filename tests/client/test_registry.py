"""The registry of known pens (JSON file in the user's configuration directory)."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from scalppen.registry import JsonPenRegistry, KnownPen, RegistryError, config_dir

KEY = bytes(range(32)).hex()


def pen(address: str = "aa:bb:cc:dd:ee:01", **kwargs: object) -> KnownPen:
    values: dict[str, object] = {"name": "SP-1 clinic", "serial": "SP1-000042", "model": "SP-1",
                                 "permit_key": KEY, "paired_at": 1_795_000_000}
    values.update(kwargs)
    return KnownPen(address, **values)  # type: ignore[arg-type]


def test_round_trip_and_lookup(tmp_path: Path) -> None:
    registry = JsonPenRegistry(tmp_path / "cfg" / "pens.json")
    assert registry.all() == []
    registry.save(pen())
    registry.save(pen("AA:BB:CC:DD:EE:02", name="home", serial="SP1-000043", permit_key=""))
    again = JsonPenRegistry(tmp_path / "cfg" / "pens.json")
    first = again.get("AA:BB:CC:DD:EE:01")
    assert first is not None and first.key_bytes == bytes(range(32))
    assert again.find("sp1-000043") == again.get("aa:bb:cc:dd:ee:02")
    assert again.find("HOME") is not None and again.find("nobody") is None
    assert again.get("AA:BB:CC:DD:EE:02").key_bytes is None  # type: ignore[union-attr]


def test_seen_orders_by_last_seen_and_remove(tmp_path: Path) -> None:
    registry = JsonPenRegistry(tmp_path / "pens.json")
    registry.save(pen("AA:00:00:00:00:01"))
    registry.save(pen("AA:00:00:00:00:02"))
    updated = registry.seen("aa:00:00:00:00:02", when=1_800_000_000)
    assert updated is not None and updated.last_seen == 1_800_000_000
    assert [p.address for p in registry.all()] == ["AA:00:00:00:00:02", "AA:00:00:00:00:01"]
    assert registry.seen("AA:00:00:00:00:09") is None
    assert registry.remove("AA:00:00:00:00:01") and not registry.remove("AA:00:00:00:00:01")
    assert len(registry.all()) == 1


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "pens.json"
    JsonPenRegistry(path).save(pen())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    data = json.loads(path.read_text())
    assert data["version"] == 1 and data["pens"][0]["permit_key"] == KEY


def test_key_is_validated_and_never_printed() -> None:
    with pytest.raises(ValueError):
        pen(permit_key="abc")
    assert KEY not in repr(pen()) and "permit_key=<set>" in repr(pen())


def test_damaged_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "pens.json"
    path.write_text("{not json")
    with pytest.raises(RegistryError, match="damaged"):
        JsonPenRegistry(path).all()


def test_config_dir_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SCALPPEN_CONFIG_DIR", str(tmp_path))
    assert config_dir() == tmp_path
    assert JsonPenRegistry().path == tmp_path / "pens.json"
