"""OLED: the model shows text and tells listeners; the display driver writes only changes."""

from __future__ import annotations

from scalppen_hardware.models.oled import CharOled


def test_model_commands_and_listener(board) -> None:  # type: ignore[no-untyped-def]
    oled = CharOled(board["display"])
    seen: list[str] = []
    oled.add_listener(seen.append)
    oled.i2c_write(b"\x00\x2a\x09\x28\x01\x0c")  # RE=1, 4 lines, RE=0, clear, on
    assert oled.on and oled.text == ""
    oled.i2c_write(b"\x80\xa0\x40HELLO")  # row 1 (0x20)
    assert oled.lines == ["", "HELLO", "", ""]
    oled.i2c_write(b"\x80\xa0\x40HELLO")  # same text: no notification
    oled.i2c_write(b"\x80\x80\x40Hi")
    assert seen == ["\nHELLO", "Hi\nHELLO"]
    oled.i2c_write(b"\x00\x08")  # display off
    assert oled.text == "" and seen[-1] == ""
    oled.remove_listener(seen.append)


def test_driver_shows_text(rig) -> None:  # type: ignore[no-untyped-def]
    seen: list[str] = []
    rig.hw.display.add_listener(seen.append)
    rig.out.display = "Depth 0.50 mm\nSpeed 117/s\nBatt 80%\n12:34"
    rig.tick()
    assert rig.hw.display_text == "Depth 0.50 mm\nSpeed 117/s\nBatt 80%\n12:34"
    assert seen[-1] == rig.hw.display_text
    writes = rig.hw.display.writes
    rig.out.display = "Depth 0.50 mm\nSpeed 133/s\nBatt 80%\n12:34"
    rig.tick()
    assert rig.hw.display.writes == writes + 1  # one changed row, one I2C write
    rig.tick(5)
    assert rig.hw.display.writes == writes + 1  # unchanged text: no traffic
    rig.out.display = "PAIR\n123456 and a very long line\n\u00b0C"
    rig.tick()
    assert rig.hw.display.lines == ["PAIR", "123456 and a very lo", "?C", ""]
