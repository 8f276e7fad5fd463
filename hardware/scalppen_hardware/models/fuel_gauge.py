"""MAX17048-like fuel gauge on I2C, reading the battery model.

Registers (16-bit, big-endian, auto-incrementing pointer):
``0x02 VCELL`` (78.125 uV/LSB), ``0x04 SOC`` (1/256 %/LSB), ``0x06 MODE``,
``0x08 VERSION`` (0x0012), ``0x0C CONFIG`` (0x971C), ``0x14 VALRT``
(MIN high byte, MAX low byte, 20 mV/LSB), ``0x16 CRATE`` (0.208 %/h per LSB,
signed), ``0x1A STATUS`` (high byte: RI 0x01, VH 0x02, VL 0x04, ...).
The gauge is powered by the cell itself, so it keeps its VL alert across an MCU
brown-out: the firmware reads it after a reboot to learn the cause. Write 0 to a
STATUS flag to clear it.

Failure modes: ``off_bus`` (a cracked joint, a gauge that hangs): it answers no
address phase, so every transfer is NACKed (the bus sees no device at its
address); ``stuck_high`` (SDA held high by a failing pull-down): every read
returns 0xFF bytes (VCELL reads 5.12 V, SOC 255 %).
"""

from __future__ import annotations

from scalppen_hardware.models.battery import BatteryModel

VCELL, SOC, MODE, VERSION, CONFIG, VALRT, CRATE, STATUS = (
    0x02,
    0x04,
    0x06,
    0x08,
    0x0C,
    0x14,
    0x16,
    0x1A,
)
ST_RI, ST_VH, ST_VL = 0x01, 0x02, 0x04


class FuelGauge:
    def __init__(self, battery: BatteryModel) -> None:
        self.battery = battery
        self.ptr = 0
        self.regs = {MODE: 0, VERSION: 0x0012, CONFIG: 0x971C, VALRT: 0x00FF, STATUS: ST_RI << 8}
        self.off_bus = False
        self.stuck_high = False

    @property
    def present(self) -> bool:
        """Whether the gauge acknowledges its address on the bus."""
        return not self.off_bus

    def check_alerts(self) -> None:
        """Latch the voltage alerts (the hardware calls this as the cell changes)."""
        mv = self.battery.terminal_mv
        valrt = self.regs[VALRT]
        if mv < (valrt >> 8) * 20:
            self.regs[STATUS] |= ST_VL << 8
        if mv > (valrt & 0xFF) * 20:
            self.regs[STATUS] |= ST_VH << 8

    def reg(self, addr: int) -> int:
        b = self.battery
        if addr == VCELL:
            return max(0, min(0xFFFF, int(b.terminal_mv * 1000 / 78.125)))
        if addr == SOC:
            return max(0, min(0xFFFF, int(b.soc * 256)))
        if addr == CRATE:
            pct_per_h = -b.cell_ma * 3600 * 100 / b.capacity_mas
            return int(pct_per_h / 0.208) & 0xFFFF
        return self.regs.get(addr, 0)

    # --- I2C device interface --------------------------------------------------
    def i2c_write(self, data: bytes) -> None:
        if not data:
            return
        self.ptr = data[0]
        payload = data[1:]
        for i in range(0, len(payload) - 1, 2):
            addr = self.ptr + i
            if addr in (MODE, CONFIG, VALRT, STATUS):
                value = (payload[i] << 8) | payload[i + 1]
                if addr == STATUS:
                    value &= self.regs[STATUS]  # flags clear by writing 0
                self.regs[addr] = value

    def peek_mem(self, memaddr: int, n: int) -> bytes:
        """What a register read at ``memaddr`` would return now, changing nothing
        (reads of this gauge have no side effects besides the pointer)."""
        ptr = self.ptr
        self.ptr = memaddr
        try:
            return self.i2c_read(n)
        finally:
            self.ptr = ptr

    def i2c_read(self, n: int) -> bytes:
        if self.stuck_high:
            return b"\xff" * n
        out = bytearray()
        addr = self.ptr & 0xFE
        while len(out) < n:
            v = self.reg(addr)
            out += bytes(((v >> 8) & 0xFF, v & 0xFF))
            addr += 2
        return bytes(out[:n])
