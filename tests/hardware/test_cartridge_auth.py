"""The cartridge's authenticator against the firmware's driver (pen/hw_cartridge.py)
and its policy (pen/wear.py): what a chip programmer, an emulator or a replay gets
(issue 12, finding 7)."""

from __future__ import annotations

import json
import time
from typing import Any

from pen import cartauth, wire
from pen.board import Board as FwBoard
from pen.wear import Wear

from scalppen_hardware import upy
from scalppen_hardware.board import Board, load_board
from scalppen_hardware.models.cartridge import VirtualCartridge
from scalppen_hardware.virtual_pen_hw import VirtualPenHardware
from tests.hardware.conftest import EPOCH, Rig

AUTH_TICKS = 12


class _Store:
    def __init__(self) -> None:
        self.c: dict[str, Any] = {"carts": {}, "cart_order": [], "cur": "", "hp": [0, 0, 0, 0, 0]}


def pen_code(hw: VirtualPenHardware, board: Board, cart: VirtualCartridge) -> tuple[dict[str, Any], int]:
    """Put ``cart`` into a pen that never saw it: (the record its driver read, the code
    its policy gives)."""
    upy.install(hw)
    try:
        rig = Rig(hw, board)
        hw.insert_cartridge(cart)
        rig.tick(AUTH_TICKS)
        rec = rig.inp.cartridge
        hw.remove_cartridge()
    finally:
        upy.uninstall()
    assert rec is not None
    return rec, Wear(FwBoard(board.data), _Store()).code(rec, EPOCH)


def another_pen(clock, board: Board | None = None) -> tuple[VirtualPenHardware, Board]:  # type: ignore[no-untyped-def]
    board = board or load_board()
    return VirtualPenHardware(board, clock), board


def test_genuine_cartridge_passes(clock) -> None:  # type: ignore[no-untyped-def]
    hw, board = another_pen(clock)
    rec, code = pen_code(hw, board, hw.make_cartridge("new"))
    assert rec["auth"] is True and code == 0


def test_used_cartridge_rewritten_is_refused_by_another_pen(clock) -> None:  # type: ignore[no-untyped-def]
    used = VirtualCartridge.make("used", now=EPOCH)
    # A chip programmer gets nothing back: the factory page is write-protected, the
    # usage page only clears bits, the counter only counts down.
    refused = used.rewrite(first_use=0, finished=False, used=0, made=EPOCH, expiry=EPOCH + 10**8)
    assert set(refused) == {"factory", "usage", "used"}
    assert used.record["finished"] and used.record["first_use"] and used.record["used"] > 0
    hw, board = another_pen(clock)
    rec, code = pen_code(hw, board, used)
    assert rec["auth"] and code == wire.E_CARTRIDGE_USED
    # An emulator loaded with the record rewritten to new, under the same ROM id.
    fake = used.clone(first_use=0, finished=False, used=0)
    assert fake.record["used"] == 0 and not fake.record["finished"]
    for _ in range(2):
        hw, board = another_pen(clock)
        rec, code = pen_code(hw, board, fake)
        assert rec["auth"] is False and code == wire.E_CARTRIDGE_UNAUTHENTIC


def test_clone_under_another_rom_fails_the_challenge(clock) -> None:  # type: ignore[no-untyped-def]
    genuine = VirtualCartridge.make("new", now=EPOCH, serial=1)
    other = VirtualCartridge.make("new", now=EPOCH, serial=2)
    clone = genuine.clone(rom=other.rom)
    hw, board = another_pen(clock)
    assert pen_code(hw, board, clone)[1] == wire.E_CARTRIDGE_UNAUTHENTIC
    assert pen_code(hw, board, genuine)[1] == 0


def test_replayed_answers_fail(clock) -> None:  # type: ignore[no-untyped-def]
    genuine = VirtualCartridge.make("new", now=EPOCH)
    seen: dict[int, bytes] = {}
    real = genuine.authenticate

    def record(n: int, challenge: bytes) -> bytes:
        seen[n] = real(n, challenge)
        return seen[n]

    genuine.authenticate = record  # type: ignore[method-assign]
    hw, board = another_pen(clock)
    assert pen_code(hw, board, genuine)[1] == 0
    replay = genuine.clone()
    replay.authenticate = lambda n, challenge: seen[n]  # type: ignore[method-assign]
    assert pen_code(hw, board, replay)[1] == wire.E_CARTRIDGE_UNAUTHENTIC


def test_undated_and_unlocked_cartridges_are_refused(clock) -> None:  # type: ignore[no-untyped-def]
    hw, board = another_pen(clock)
    rec, code = pen_code(hw, board, hw.make_cartridge("undated"))
    assert rec["auth"] and rec["made"] == 0 and code == wire.E_CARTRIDGE_UNDATED
    unlocked = hw.make_cartridge("new")
    unlocked.protection = [0, 0, 0x02]  # the factory never locked its pages
    rec, code = pen_code(hw, board, unlocked)
    assert rec["auth"] is False and code == wire.E_CARTRIDGE_UNAUTHENTIC


def test_a_pen_without_the_key_refuses_every_cartridge(clock) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads(load_board().to_json())
    doc["cartridge"]["auth_key"] = ""
    board = Board(doc)
    hw = VirtualPenHardware(board, clock)
    assert pen_code(hw, board, hw.make_cartridge("new"))[1] == wire.E_CARTRIDGE_UNAUTHENTIC


def test_a_pen_keyed_otherwise_refuses_the_cartridge(clock) -> None:  # type: ignore[no-untyped-def]
    hw, board = another_pen(clock)
    cart = hw.make_cartridge("new", master=b"\x01" * 32)  # another factory's key
    assert pen_code(hw, board, cart)[1] == wire.E_CARTRIDGE_UNAUTHENTIC


def test_check_is_cheap_and_done_once_per_insertion(rig) -> None:  # type: ignore[no-untyped-def]
    cart = rig.hw.insert_cartridge("new")
    rig.tick(AUTH_TICKS)
    assert rig.inp.cartridge["auth"]
    computed: list[int] = []
    real = cart.authenticate

    def counted(n: int, challenge: bytes) -> bytes:
        computed.append(n)
        return real(n, challenge)

    cart.authenticate = counted
    rig.tick(200)  # two seconds with the cartridge in: presence polls only
    assert rig.inp.cartridge["auth"] and computed == []
    pages = [cart.page(p) for p in range(3)]
    chal = [bytes([p]) * 32 for p in range(3)]
    got = [cart.authenticate(p, chal[p]) for p in range(3)]
    key = bytes.fromhex(rig.board["cartridge"]["auth_key"])
    t0 = time.perf_counter()
    for _ in range(100):
        assert cartauth.check(key, cart.rom, pages, got, chal) == cartauth.OK
    assert (time.perf_counter() - t0) / 100 < 0.01  # CPython; see docs/fidelity.md for MicroPython


def test_a_cartridge_swapped_between_two_polls_is_read_as_the_new_one(rig) -> None:  # type: ignore[no-untyped-def]
    """The driver used to keep the first cartridge's ROM and record when another
    replaced it between two presence polls (presence answered): the new one was never
    read, and the pen went on with the old one's record, or with none."""
    first = rig.hw.insert_cartridge("new")
    rig.tick(AUTH_TICKS)
    assert rig.inp.cartridge["id"] == first.rom
    rig.hw.remove_cartridge()
    second = rig.hw.insert_cartridge("used")  # no tick in between
    assert second.rom != first.rom
    rig.tick(AUTH_TICKS + 4)
    rec = rig.inp.cartridge
    assert rec is not None and rec["id"] == second.rom and rec["auth"]
    assert rec["finished"]  # the used one's own record, not the first's
