"""Rules of the firmware safety machine (test_stateful_safety.Machine): a second central, clock changes from a central, refusal floods (rules 6, 20, 21)."""


class LinkAttacks:
    """Mixed into the safety machine; its rules use the machine's helpers."""
