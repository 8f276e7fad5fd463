"""The pen's bond store (``pen/ble.py``): a power cut while bonds are saved loses
neither the old bonds nor the new ones, and damaged files read as no bonds."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pen.ble import BondStore


def _store(tmp_path: Path) -> BondStore:
    bonds = BondStore(str(tmp_path / "bonds.json"))
    bonds.entries = [[1, b"\x01\x02", b"key-one"], [2, b"\x03", b"key-two"]]
    bonds.save()
    return bonds


def test_bonds_round_trip(tmp_path: Path) -> None:
    _store(tmp_path)
    again = BondStore(str(tmp_path / "bonds.json"))
    assert again.entries == [[1, b"\x01\x02", b"key-one"], [2, b"\x03", b"key-two"]]
    assert not (tmp_path / "bonds.json.tmp").exists()


def test_cut_between_remove_and_rename_keeps_the_new_bonds(tmp_path: Path) -> None:
    # Where rename cannot replace a file, save removes the old one first: a power cut
    # right then leaves only the temporary file, which the next boot reads.
    bonds = _store(tmp_path)
    bonds.entries.append([3, b"\x04", b"key-three"])
    raw = [[e[0], e[1].hex(), e[2].hex()] for e in bonds.entries]
    (tmp_path / "bonds.json.tmp").write_text(json.dumps(raw))
    os.remove(tmp_path / "bonds.json")
    again = BondStore(str(tmp_path / "bonds.json"))
    assert [e[0] for e in again.entries] == [1, 2, 3]


def test_cut_while_writing_the_temporary_file_keeps_the_old_bonds(tmp_path: Path) -> None:
    _store(tmp_path)
    (tmp_path / "bonds.json.tmp").write_text('[[3, "04", "6b')  # torn
    again = BondStore(str(tmp_path / "bonds.json"))
    assert [e[0] for e in again.entries] == [1, 2]


@pytest.mark.parametrize("text", ["", "{]", '{"a": 1}', '[[1, "zz", "00"], 5]'])
def test_damaged_bond_file_reads_as_no_bonds_or_the_good_entries(tmp_path: Path,
                                                                 text: str) -> None:
    (tmp_path / "bonds.json").write_text(text)
    again = BondStore(str(tmp_path / "bonds.json"))
    assert again.entries == []


def test_a_ninth_host_forgets_the_oldest_whole_bond_never_half(tmp_path: Path) -> None:
    # NimBLE keeps two secrets per bond (ours and the peer's, both under the peer's
    # address); the pen keeps 8 hosts, and eviction drops a host's every secret.
    bonds = BondStore(str(tmp_path / "bonds.json"))
    for host in range(9):
        addr = bytes((host,)) * 7
        bonds.set(1, addr, b"our-%d" % host)
        bonds.set(2, addr, b"peer-%d" % host)
    again = BondStore(str(tmp_path / "bonds.json"))
    assert again.count() == 8
    kept = {e[1][0] for e in again.entries}
    assert kept == set(range(1, 9))  # host 0, the oldest, is gone: both its secrets
    for host in range(1, 9):
        addr = bytes((host,)) * 7
        assert again.get(1, 0, addr) == b"our-%d" % host
        assert again.get(2, 0, addr) == b"peer-%d" % host
