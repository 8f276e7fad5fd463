"""MicroPython's ``micropython`` module for firmware running under CPython.

``schedule`` queues on the attached hardware (which runs the queue after every
physics step, as MicroPython runs scheduled callbacks between bytecodes); with
no hardware attached the callback runs at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_hw: Any = None


def _attach(hw: Any) -> None:
    global _hw
    _hw = hw


def const(x: Any) -> Any:
    return x


def native(f: F) -> F:
    return f


def viper(f: F) -> F:
    return f


def asm_xtensa(f: F) -> F:
    return f


def schedule(func: Callable[[Any], Any], arg: Any) -> None:
    if _hw is None:
        func(arg)
        return
    _hw.schedule(func, arg)


def alloc_emergency_exception_buf(size: int) -> None:
    return None


def mem_info(verbose: int = 0) -> None:
    print("mem: virtual (CPython)")


def qstr_info(verbose: int = 0) -> None:
    return None


def stack_use() -> int:
    return 0


def heap_lock() -> int:
    return 0


def heap_unlock() -> int:
    return 0


def kbd_intr(chr: int) -> None:
    return None


def opt_level(level: int | None = None) -> int | None:
    return 0 if level is None else None
