"""Cartridge: record codec (model = firmware), 1-Wire EEPROM, driver read/write, pull/insert."""

from __future__ import annotations

import pytest
from pen import hw_cartridge as fw

from scalppen_hardware.models.cartridge import (
    RECORD_SIZE,
    RecordError,
    VirtualCartridge,
    crc8,
    decode_record,
    encode_record,
    make_rom,
)
from tests.hardware.conftest import EPOCH

FIELDS = {
    "needles": 14,
    "rated": 100000,
    "expiry": EPOCH + 63072000,
    "made": EPOCH,
    "first_use": EPOCH + 60,
    "used": 4321,
    "finished": True,
}


def test_record_round_trip_and_firmware_agrees() -> None:
    raw = encode_record(FIELDS)
    assert len(raw) == RECORD_SIZE == 32
    assert decode_record(raw) == FIELDS
    assert fw.encode(FIELDS) == raw
    assert fw.decode(raw) == FIELDS


@pytest.mark.parametrize("pos", [0, 3, 7, 20, 24, 30])
def test_crc_rejects_corruption(pos: int) -> None:
    raw = bytearray(encode_record(FIELDS))
    raw[pos] ^= 0x01
    with pytest.raises(RecordError):
        decode_record(bytes(raw))
    assert fw.decode(bytes(raw)) is None
    assert fw.decode(b"\xff" * 32) is None


def test_rom_and_kinds() -> None:
    rom = make_rom(0x123456789ABC)
    assert rom[0] == 0x2D and crc8(rom[:7]) == rom[7] == fw.crc8(rom[:7])
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
    with pytest.raises(RecordError):
        VirtualCartridge.make("corrupt", now=now).record  # noqa: B018
    with pytest.raises(ValueError, match="unknown cartridge kind"):
        VirtualCartridge.make("shiny", now=now)


def test_onewire_protocol(hw, machine) -> None:  # type: ignore[no-untyped-def]
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
    ow.select_rom(cart.rom)
    ow.write(b"\xf0\x00\x00")
    mem = bytearray(32)
    ow.readinto(mem)
    assert decode_record(bytes(mem)) == cart.record
    # A row write needs the matching authorisation to be copied.
    ow.select_rom(cart.rom)
    ow.write(b"\x0f\x08\x00" + b"ABCDEFGH")
    ow.select_rom(cart.rom)
    ow.write(b"\x55\x08\x00\x06")  # wrong E/S
    assert cart.memory[8:16] != b"ABCDEFGH"
    ow.select_rom(cart.rom)
    ow.write(b"\x55\x08\x00\x07")
    assert cart.memory[8:16] == b"ABCDEFGH"
    ow.select_rom(bytes(8))  # another id: nobody answers
    ow.write(b"\xf0\x00\x00")
    assert ow.readbyte() == 0xFF


def test_driver_reads_cartridge_and_reports_pull(rig) -> None:  # type: ignore[no-untyped-def]
    rig.tick(3)
    assert rig.inp.cartridge is None
    cart = rig.hw.insert_cartridge("new", needles=16)
    rig.tick(3)
    c = rig.inp.cartridge
    assert c["valid"] and c["id"] == cart.rom and c["needles"] == 16 and c["used"] == 0
    assert c["rated"] == rig.board["limits"]["cartridge_rated_strokes"]
    rig.hw.inject("cartridge_pulled")
    rig.tick(5)
    assert rig.inp.cartridge is None
    rig.hw.clear("cartridge_pulled")  # the same cartridge goes back in
    rig.tick(3)
    assert rig.inp.cartridge["id"] == cart.rom
    assert cart.insertions == 2


def test_driver_marks_corrupt_and_blank_invalid(rig) -> None:  # type: ignore[no-untyped-def]
    for kind in ("corrupt", "blank"):
        cart = rig.hw.insert_cartridge(kind)
        rig.tick(3)
        c = rig.inp.cartridge
        assert c is not None and c["valid"] is False and c["id"] == cart.rom
        rig.hw.remove_cartridge()
        rig.tick(5)
        assert rig.inp.cartridge is None


def test_driver_write_back_round_trips(rig) -> None:  # type: ignore[no-untyped-def]
    cart = rig.hw.insert_cartridge("new")
    rig.tick(3)
    rig.out.cartridge_write = {"first_use": EPOCH + 5, "used": 12345}
    rig.tick()
    rig.out.cartridge_write = None
    assert rig.inp.cartridge_busy
    rig.tick(10)
    assert not rig.inp.cartridge_busy and rig.inp.cartridge_errors == 0
    assert cart.record["used"] == 12345 and cart.record["first_use"] == EPOCH + 5
    assert rig.inp.cartridge["used"] == 12345
    assert cart.copies == 2  # only the rows that changed (first_use/used, flags/CRC)
    rig.out.cartridge_write = {"finished": True}
    rig.tick(8)
    assert cart.record["finished"] and rig.inp.cartridge["finished"]
    assert cart.record["used"] == 12345


def test_write_to_pulled_cartridge_fails_cleanly(rig) -> None:  # type: ignore[no-untyped-def]
    cart = rig.hw.insert_cartridge("new")
    rig.tick(3)
    rig.hw.remove_cartridge()
    rig.out.cartridge_write = {"used": 99}
    rig.tick()
    rig.out.cartridge_write = None
    rig.tick(6)
    assert rig.inp.cartridge is None and rig.inp.cartridge_errors >= 1
    assert cart.record["used"] == 0
