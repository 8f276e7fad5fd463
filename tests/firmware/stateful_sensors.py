"""Rules of the firmware safety machine (test_stateful_safety.Machine): sensor dropouts, a saturated motor, a gauge off the bus, a depth sensor that lies (rules 3, 8, 9, 12, 14)."""


class SensorFaults:
    """Mixed into the safety machine; its rules use the machine's helpers."""
