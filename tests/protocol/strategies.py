"""Hypothesis strategies for every message, derived from the construct definitions."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from scalppen_protocol.codegen import struct_spec
from scalppen_protocol.codes import MsgType
from scalppen_protocol.messages import CATALOGUE

_INT_RANGES = {
    "B": (0, 0xFF), "b": (-0x80, 0x7F), "H": (0, 0xFFFF), "h": (-0x8000, 0x7FFF),
    "I": (0, 0xFFFFFFFF), "L": (0, 0xFFFFFFFF), "Q": (0, 2**64 - 1),
}


def _fixed(fmt: str, names: tuple[str, ...]) -> dict[str, st.SearchStrategy[Any]]:
    out: dict[str, st.SearchStrategy[Any]] = {}
    body = fmt[1:]
    i = 0
    for name in names:
        digits = ""
        while body[i].isdigit():
            digits += body[i]
            i += 1
        code = body[i]
        i += 1
        if code == "s":
            n = int(digits)
            out[name] = st.binary(min_size=n, max_size=n)
        else:
            lo, hi = _INT_RANGES[code]
            out[name] = st.integers(lo, hi)
    return out


def _spec_strategy(spec: tuple[Any, ...] | list[Any]) -> st.SearchStrategy[dict[str, Any]]:
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for seg in spec:
        if seg[0] == "f":
            parts.update(_fixed(seg[1], seg[2]))
        elif seg[0] == "s":
            parts[seg[1]] = st.text(max_size=60).filter(lambda s: len(s.encode()) <= 255)
        elif seg[0] == "a":
            parts[seg[1]] = st.lists(
                st.fixed_dictionaries(_fixed(seg[2], seg[3])), max_size=12
            )
        else:
            parts[seg[1]] = _spec_strategy(seg[2])
    return st.fixed_dictionaries(parts)


def fields_for(msg_type: MsgType) -> st.SearchStrategy[dict[str, Any]]:
    return _spec_strategy(struct_spec(CATALOGUE[msg_type]))


messages = st.sampled_from(sorted(CATALOGUE)).flatmap(
    lambda mt: st.tuples(st.just(mt), st.integers(0, 0xFFFF), fields_for(mt))
)
