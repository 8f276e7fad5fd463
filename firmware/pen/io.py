# Inputs and Outputs of the core's tick (docs/architecture.md, "Core tick contract").
# Plain classes with attributes: the drivers fill an Inputs every tick, the core
# returns an Outputs the drivers apply. MicroPython and CPython.


class Inputs:
    def __init__(self):
        self.hall_count = 0  # cumulative strokes since boot (hall IRQ count)
        self.motor_ma = 0  # motor current through the shunt, mA
        self.temp_c10 = 250  # handpiece temperature, 0.1 degC
        self.battery_pct = 0  # fuel gauge state of charge, %
        self.battery_mv = 0  # cell voltage, mV
        self.charging = False  # charger plugged in
        self.contact = False  # skin contact sensor
        self.depth_um = 0  # measured actual needle depth (depth sensor), um
        self.home = False  # home switch closed
        self.button = False  # button pressed (debounced)
        self.cartridge = None  # None, or the cartridge record dict (see pen/hw_cartridge.py)
        self.link_up = False  # set by the link layer, not the drivers
        self.link_epoch = 0  # the link layer's count of link changes (connect, drop, auth)
        # Extras the drivers also report.
        self.depth_cmd_um = 0  # where the counted steps put the carriage, um
        self.depth_moving = False  # the stepper is still travelling to its target
        self.homed = False  # the home switch has been found since boot
        self.cartridge_busy = False  # a cartridge_write is still being programmed
        self.cartridge_errors = 0  # cartridge writes that failed verification
        self.brownout = False  # the fuel gauge saw the cell sag below its low-voltage alert
        self.battery_ok = False  # the fuel gauge answered its last poll (else the charge is unknown)


class Outputs:
    def __init__(self):
        self.motor_duty = 0  # 0..1023; 0 stops the motor at once
        self.depth_target_um = 0  # commanded needle depth, um
        self.stepper_enable = False  # stepper driver powered (holds position)
        self.home_seek = False  # drive toward the home switch until it closes
        self.display = ""  # text for the display, lines separated by "\n"
        self.cartridge_write = None  # None, or a dict of record fields to program
        self.events = []  # (msg_type, fields) to notify over the link
        self.feed_wdt = False  # feed the watchdog this tick
