"""Rules of the firmware safety machine (test_stateful_safety.Machine): rewritten, cloned and undated cartridges (rules 13, 15)."""


class CartridgeAttacks:
    """Mixed into the safety machine; its rules use the machine's helpers."""
