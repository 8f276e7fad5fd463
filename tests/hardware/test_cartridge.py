"""Cartridge: page codec (model = firmware), the authenticator on 1-Wire, driver read/write, pull/insert."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from pen import cartauth as fw

from scalppen_hardware.models.cartridge import (
    DEV_MASTER_KEY,
    FAMILY,
    RecordError,
    VirtualCartridge,
    crc8,
    crc16_ow,
    device_secret,
    encode_factory,
    encode_usage,
    make_rom,
    page_mac,
)
from tests.hardware.conftest import EPOCH

FIELDS: dict[str, Any] = {
    "needles": 14,
    "rated": 100000,
    "expiry": EPOCH + 63072000,
    "made": EPOCH,
    "first_use": EPOCH + 60,
    "used": 4321,
    "finished": True,
}
AUTH_TICKS = 12  # presence, READ STATUS and three authenticated pages, a command every other tick


def test_pages_and_macs_agree_with_firmware(board) -> None:  # type: ignore[no-untyped-def]
    assert bytes.fromhex(board["cartridge"]["auth_key"]) == DEV_MASTER_KEY
    assert board["cartridge"]["family"] == FAMILY
    f = FIELDS
    assert encode_factory(f) == fw.encode_factory(f["needles"], f["rated"], f["expiry"], f["made"])
    assert encode_usage(f["first_use"], True) == fw.encode_usage(f["first_use"], True)
    assert encode_usage() == fw.encode_usage() == b"\xff" * 32
    cart = VirtualCartridge.make("new", now=EPOCH, serial=7, **f)
    pages = [cart.page(p) for p in range(3)]
    # one count is two strokes: 4,321 strokes used read back as 4,322, never fewer
    assert fw.decode(pages) == cart.record == dict(FIELDS, used=4322)
    rom = cart.rom
    assert device_secret(DEV_MASTER_KEY, rom) == fw.device_secret(DEV_MASTER_KEY, rom)
    chal = bytes(range(32))
    mac = cart.authenticate(1, chal)
    assert mac == fw.page_mac(fw.device_secret(DEV_MASTER_KEY, rom), rom, 1, pages[1], chal)
    assert mac == page_mac(device_secret(DEV_MASTER_KEY, rom), rom, 1, pages[1], chal)
    assert crc16_ow(b"\x66\x02\x44\x00") == fw.crc16_ow(b"\x66\x02\x44\x00")


@pytest.mark.parametrize("pos", [0, 3, 7, 12, 20, 30])
def test_crc_rejects_a_corrupt_factory_page(pos: int) -> None:
    cart = VirtualCartridge.make("new", now=EPOCH)
    cart.pages[0][pos] ^= 0x01
    with pytest.raises(RecordError):
        cart.record  # noqa: B018
    assert fw.decode([cart.page(p) for p in range(3)]) is None


def test_rom_and_kinds() -> None:
    rom = make_rom(0x123456789ABC)
    assert rom[0] == FAMILY and crc8(rom[:7]) == rom[7]
    with pytest.raises(ValueError):
        VirtualCartridge(rom[:7] + b"\x00")
    now = EPOCH
    new = VirtualCartridge.make("new", now=now).record
    assert new["used"] == 0 and new["first_use"] == 0 and new["expiry"] > now
    assert VirtualCartridge.make("used", now=now).record["finished"]
    assert VirtualCartridge.make("expired", now=now).record["expiry"] < now
    worn = VirtualCartridge.make("worn", now=now, rated=5000).record
    assert worn["used"] >= worn["rated"] == 5000
    assert VirtualCartridge.make("inserted", now=now).record["first_use"] > 0
    assert VirtualCartridge.make("undated", now=now).record["made"] == 0
    for kind in ("corrupt", "blank"):
        with pytest.raises(RecordError):
            VirtualCartridge.make(kind, now=now).record  # noqa: B018
    with pytest.raises(ValueError, match="unknown cartridge kind"):
        VirtualCartridge.make("shiny", now=now)
    with pytest.raises(ValueError, match="counter"):
        VirtualCartridge.make("new", now=now, rated=300000)  # above 131,071 counts of two


def _command(ow, cart, cmd: bytes, clock=None, wait_ms: int = 0) -> tuple[int, bytes]:  # type: ignore[no-untyped-def]
    ow.select_rom(cart.rom)
    frame = bytes([0x66, len(cmd)]) + cmd
    ow.write(frame)
    crc = bytearray(2)
    ow.readinto(crc)
    assert crc16_ow(frame + crc) == 0xB001
    ow.writebyte(0xAA)
    if clock is not None:
        clock.advance_ms(wait_ms)
    buf = bytearray(70)
    ow.readinto(buf)
    n = buf[1]
    assert crc16_ow(bytes(buf[1 : n + 4])) == 0xB001
    return buf[2], bytes(buf[3 : n + 2])


def test_onewire_protocol(hw, machine, clock) -> None:  # type: ignore[no-untyped-def]
    import onewire

    ow = onewire.OneWire(machine.Pin(hw.board["pins"]["onewire"]))
    assert not ow.reset() and ow.scan() == []
    cart = hw.insert_cartridge("new")
    assert ow.reset()
    assert [bytes(r) for r in ow.scan()] == [cart.rom]
    ow.writebyte(0x33)
    rom = bytearray(8)
    ow.readinto(rom)
    assert bytes(rom) == cart.rom and ow.crc8(rom[:7]) == rom[7]
    # A result read before the chip's command time is the idle line.
    ow.select_rom(cart.rom)
    ow.write(b"\x66\x02\x44\x00")
    ow.readinto(bytearray(2))
    ow.writebyte(0xAA)
    assert ow.readbyte() == 0xFF
    res, data = _command(ow, cart, b"\x44\x00", clock, 10)
    assert res == 0xAA and data == cart.page(0)
    res, data = _command(ow, cart, b"\xaa", clock, 10)
    assert res == 0xAA and list(data[:3]) == [0x02, 0x04, 0x02]  # WP, EPROM, WP
    chal = bytes(range(32))
    res, data = _command(ow, cart, b"\xa5\x02" + chal, clock, 10)
    assert res == 0xAA and data[:32] == cart.page(2) and data[32:] == cart.authenticate(2, chal)
    # the factory page refuses a write; the usage page only clears bits
    res, _ = _command(ow, cart, b"\x96\x00" + bytes(32), clock, 100)
    assert res == 0x55 and cart.record["needles"] == 14
    res, _ = _command(ow, cart, b"\x96\x01" + struct.pack("<I", 0x0F0F0F0F) + b"\xff" * 28, clock, 100)
    res, _ = _command(ow, cart, b"\x96\x01" + struct.pack("<I", 0xF0F0F0F0) + b"\xff" * 28, clock, 100)
    assert res == 0xAA and cart.page(1)[:4] == bytes(4)
    # the counter only counts down
    res, _ = _command(ow, cart, b"\xc9\x05\x00\x00", clock, 100)
    assert res == 0xAA and cart.record["used"] == 10  # five counts of two strokes
    res, _ = _command(ow, cart, b"\xc3\x01\x00", clock, 100)  # protection cannot be taken off
    assert cart.protection[1] == 0x04
    ow.select_rom(bytes(8))  # another id: nobody answers
    ow.write(b"\x66\x02\x44\x00")
    assert ow.readbyte() == 0xFF


def test_driver_reads_cartridge_and_reports_pull(rig) -> None:  # type: ignore[no-untyped-def]
    rig.tick(3)
    assert rig.inp.cartridge is None
    cart = rig.hw.insert_cartridge("new", needles=16)
    rig.tick(AUTH_TICKS)
    c = rig.inp.cartridge
    assert c is not None
    assert c["valid"] and c["auth"] and c["id"] == cart.rom and c["needles"] == 16 and c["used"] == 0
    assert c["rated"] == rig.board["limits"]["cartridge_rated_strokes"] == 150_000
    rig.hw.inject("cartridge_pulled")
    rig.tick(5)
    assert rig.inp.cartridge is None
    rig.hw.clear("cartridge_pulled")  # the same cartridge goes back in
    rig.tick(AUTH_TICKS)
    c = rig.inp.cartridge
    assert c is not None and c["id"] == cart.rom and c["auth"]
    assert cart.insertions == 2


def test_driver_marks_corrupt_and_blank_invalid(rig) -> None:  # type: ignore[no-untyped-def]
    for kind in ("corrupt", "blank"):
        cart = rig.hw.insert_cartridge(kind)
        rig.tick(AUTH_TICKS)
        c = rig.inp.cartridge
        assert c is not None and c["valid"] is False and c["auth"] is False and c["id"] == cart.rom
        rig.hw.remove_cartridge()
        rig.tick(5)
        assert rig.inp.cartridge is None


def test_driver_write_back_round_trips(rig) -> None:  # type: ignore[no-untyped-def]
    cart = rig.hw.insert_cartridge("new")
    rig.tick(AUTH_TICKS)
    rig.out.cartridge_write = {"first_use": EPOCH + 5, "used": 12345}
    rig.tick()
    rig.out.cartridge_write = None
    assert rig.inp.cartridge_busy
    rig.tick(30)
    assert not rig.inp.cartridge_busy and rig.inp.cartridge_errors == 0
    assert cart.record["used"] == 12346 and cart.record["first_use"] == EPOCH + 5
    # recorded in counts of two strokes, rounded up: never fewer than were made
    assert rig.inp.cartridge["used"] == 12346 and rig.inp.cartridge["auth"]
    assert cart.writes == 2  # the usage page once, the counter once
    rig.out.cartridge_write = {"finished": True, "used": 100}  # fewer strokes: not taken
    rig.tick()
    rig.out.cartridge_write = None
    rig.tick(15)
    assert cart.record["finished"] and rig.inp.cartridge["finished"]
    assert cart.record["used"] == 12346 and cart.record["first_use"] == EPOCH + 5


def test_write_to_pulled_cartridge_fails_cleanly(rig) -> None:  # type: ignore[no-untyped-def]
    cart = rig.hw.insert_cartridge("new")
    rig.tick(AUTH_TICKS)
    rig.hw.remove_cartridge()
    rig.out.cartridge_write = {"used": 99}
    rig.tick()
    rig.out.cartridge_write = None
    rig.tick(12)
    assert rig.inp.cartridge is None and rig.inp.cartridge_errors >= 1
    assert cart.record["used"] == 0
