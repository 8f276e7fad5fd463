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


def _bond(bonds: BondStore, host: int) -> bytes:
    addr = bytes((host,)) * 7
    assert bonds.set(1, addr, b"our-%d" % host) and bonds.set(2, addr, b"peer-%d" % host)
    return addr


def test_a_full_table_never_evicts_the_permit_keys_host(tmp_path: Path) -> None:
    # Eight strangers bonding in turn must not push out the host that holds the
    # permit key (denial of treatment): the oldest other host goes instead.
    bonds = BondStore(str(tmp_path / "bonds.json"))
    host = _bond(bonds, 0)
    bonds.revoke_except(host)
    for stranger in range(1, 17):
        _bond(bonds, stranger)
    again = BondStore(str(tmp_path / "bonds.json"))
    assert again.host == host and host in again.peers() and again.count() == 8
    assert again.get(2, 0, host) == b"peer-0"


def test_a_full_table_of_protected_bonds_refuses_a_new_one(tmp_path: Path) -> None:
    bonds = BondStore(str(tmp_path / "bonds.json"), max_bonds=1)
    host = _bond(bonds, 0)
    bonds.revoke_except(host)
    assert bonds.set(1, b"\x05" * 7, b"our-5") is False
    assert bonds.peers() == [host]


def test_a_delete_answers_true_only_when_it_deleted_something(tmp_path: Path) -> None:
    # NimBLE deletes until the store answers False (ble_store_util_delete_all).
    bonds = BondStore(str(tmp_path / "bonds.json"))
    addr = _bond(bonds, 3)
    assert bonds.set(1, addr, None) is True
    assert bonds.set(1, addr, None) is False
    assert bonds.set(2, addr, None) is True and bonds.count() == 0
    assert bonds.set(2, addr, None) is False


def test_the_stacks_own_irk_is_no_bond(tmp_path: Path) -> None:
    # MicroPython's binding stores the pen's IRK as secret type 10 under b"irk".
    bonds = BondStore(str(tmp_path / "bonds.json"))
    assert bonds.set(10, b"irk", bytes(16))
    assert bonds.count() == 0 and bonds.get(10, 0, b"irk") == bytes(16)


def test_seven_zero_bytes_match_no_bond(tmp_path: Path) -> None:
    # When NimBLE iterates SEC_OUR to find a peer to evict, MicroPython's binding
    # passes BLE_ADDR_ANY as the key: it must find nothing.
    bonds = BondStore(str(tmp_path / "bonds.json"))
    _bond(bonds, 4)
    assert bonds.get(1, 0, bytes(7)) is None


def test_revoking_keeps_only_the_new_host(tmp_path: Path) -> None:
    bonds = BondStore(str(tmp_path / "bonds.json"))
    old = [_bond(bonds, h) for h in (1, 2, 3)]
    new = _bond(bonds, 4)
    assert bonds.revoke_except(new) == old
    again = BondStore(str(tmp_path / "bonds.json"))
    assert again.peers() == [new] and again.host == new


def test_half_a_bond_is_no_bond(tmp_path: Path) -> None:
    # A power cut between NimBLE's two writes of a new bond (ours, then the peer's:
    # ble_sm_persist_keys) leaves half of one: it cannot encrypt a link, so it must
    # not count as an owner (the pen stays open to a first pairing).
    bonds = BondStore(str(tmp_path / "bonds.json"))
    addr = b"\x01\x08\x00\x00\x81\x5c\xf0"
    assert bonds.set(1, addr, b"ours") is True
    again = BondStore(str(tmp_path / "bonds.json"))
    assert again.peers() == [addr] and again.count() == 0
    assert again.set(2, addr, b"peer's") is True and again.count() == 1
