"""Fuzzing of the firmware and host decoders, CI-sized (bench/fuzz/ runs the same
targets with 100,000 examples each, and under atheris).

One hypothesis property per target of tests/fuzz/targets.py over raw bytes and
structure-aware mutations of valid frames; checks that the seeds and the mutations
reach deep code; checks that the oracles themselves catch what they must.
"""

from __future__ import annotations

import copy
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from pen import link, wire

from scalppen_protocol import serial_framing as hser
from scalppen_protocol.codec import decode_frame
from scalppen_protocol.errors import ProtocolError
from tests.fuzz import targets as T
from tests.fuzz.strategies import INPUTS

FUZZ = settings(max_examples=1000,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _run(name: str, data: bytes) -> str:
    label = T.TARGETS[name](data)
    assert isinstance(label, str) and label
    return label


@FUZZ
@given(INPUTS["wire_decode"])
def test_wire_decode_returns_or_raises_wire_error(data: bytes) -> None:
    _run("wire_decode", data)


@settings(FUZZ, max_examples=800)
@given(INPUTS["handler"])
def test_handler_answers_every_frame_and_rejections_change_nothing(data: bytes) -> None:
    _run("handler", data)


@FUZZ
@given(INPUTS["fw_reassembler"])
def test_fw_reassembler_gives_frames_or_wire_errors_within_bounds(data: bytes) -> None:
    _run("fw_reassembler", data)


@FUZZ
@given(INPUTS["fw_deframer"])
def test_fw_deframer_gives_frames_or_wire_errors_within_bounds(data: bytes) -> None:
    _run("fw_deframer", data)


@FUZZ
@given(INPUTS["host_decode"])
def test_host_decode_raises_only_protocol_error(data: bytes) -> None:
    _run("host_decode", data)


@FUZZ
@given(INPUTS["host_reassembler"])
def test_host_reassembler_gives_frames_or_protocol_errors_within_bounds(data: bytes) -> None:
    _run("host_reassembler", data)


@FUZZ
@given(INPUTS["host_deframer"])
def test_host_deframer_gives_frames_or_protocol_errors_within_bounds(data: bytes) -> None:
    _run("host_deframer", data)


@FUZZ
@given(INPUTS["differential"])
def test_both_codecs_agree_on_mutated_frames(data: bytes) -> None:
    _run("differential", data)


@pytest.mark.parametrize("name", list(T.TARGETS))
def test_every_seed_passes_and_some_are_accepted(name: str) -> None:
    labels = Counter(_run(name, s) for s in T.seed_inputs(name))
    accepted = sum(n for k, n in labels.items() if k.startswith(("ok", "frames")))
    assert accepted >= len(T.seed_inputs(name)) // 2, labels


def _recipe_outcomes(name: str, recipe: Callable[[bytes], bytes], n: int) -> set[str]:
    rng = random.Random(name)
    return {_run(name, recipe(rng.randbytes(rng.randrange(2, 26)))) for _ in range(n)}


def test_mutated_requests_reach_the_checks_behind_the_permit_tag() -> None:
    seen = _recipe_outcomes("handler", T.recipe_handler, 2500)
    want = {"ok:4", "ok:7", "ok:11", "nack:PERMIT_EXPIRED", "nack:PERMIT_OVER_LIMIT",
            "nack:PERMIT_BAD_TAG", "nack:DEPTH_OFF_GRID",
            "nack:ALREADY_RUNNING", "nack:NOT_AUTHORIZED", "decode-nack:MALFORMED"}
    assert want <= seen, want - seen


def test_mutated_frames_reach_every_decoder_verdict() -> None:
    seen = _recipe_outcomes("differential", T.recipe_frame, 1500)
    assert {"ok", "err:TRUNCATED", "err:MALFORMED", "err:BAD_VERSION", "err:NOT_SUPPORTED"} <= seen


def test_long_link_inputs_reach_oversize() -> None:
    frags = T.fragment_input([bytes(5000)], 23, b"", False)
    r = link.Reassembler()
    codes = []
    for f in T.split_chunks(frags[1:]):
        try:
            r.feed(f)
        except wire.WireError as e:
            codes.append(e.code)
    # the message is dropped at 4096 bytes; its later fragments have no start
    assert codes[0] == wire.E_OVERSIZE and set(codes[1:]) == {wire.E_OUT_OF_ORDER}
    out = link.Deframer().feed(T.serial_input([b"\x01" * 4200], b"", 0)[1:])
    assert [getattr(i, "code", None) for i in out] == [wire.E_OVERSIZE]


def _idle_state() -> tuple[Any, dict[str, Any]]:
    h = copy.deepcopy(T._template("idle"))
    return h, T.pen_state(h)


@pytest.mark.parametrize("change", ["depth", "nonce", "file", "log", "permit", "hello"])
def test_state_oracle_catches_every_kind_of_change(change: str) -> None:
    h, before = _idle_state()
    pen = h.pen
    if change == "depth":
        pen.depth.setting_um += 250
    elif change == "nonce":
        pen.store.c["nonces"].append(["00" * 8, 1])
    elif change == "file":
        pen.store.fs.files["state.dat"][0] ^= 1
    elif change == "log":
        pen._log(wire.K_TIME_SET)  # a record, but not a refusal
    elif change == "permit":
        pen.permit = {"depth": 500, "s": 60, "expires": 0, "standalone": True}
    else:
        h.hello = not h.hello
    refusals = 1 if change == "log" else 0
    with pytest.raises(AssertionError):
        T.assert_rejected_unchanged(before, T.pen_state(h), refusals, wire.T_SET_TIME, 0)


def test_a_refusal_record_is_the_only_change_a_nack_may_make() -> None:
    h, before = _idle_state()
    frame = wire.encode(wire.T_SET_DEPTH, 9, {"depth_um": 1100})
    rt, _, f = wire.decode(h.handle(frame, True)[0])
    assert (rt, f["error"]) == (wire.T_NACK, wire.E_DEPTH_OFF_GRID)
    after = T.pen_state(h)
    T.assert_rejected_unchanged(before, after, 1, wire.T_SET_DEPTH, wire.E_DEPTH_OFF_GRID)
    [rec] = T.new_log_records(before, after)
    assert (rec["kind"], rec["depth_um"]) == (wire.K_START_REFUSED, 1100)
    assert T.check_handler([frame], "idle") == "nack:DEPTH_OFF_GRID"


def test_a_session_runs_through_the_sequence_layout() -> None:
    reqs = [T.request_frames()[i] for i in T._SESSION]
    h = copy.deepcopy(T._template("idle"))
    labels = [T.handle_checked(h, f, True) for f in reqs]
    assert labels == ["ok:4", "ok:5", "ok:7", "ok:2", "ok:9", "ok:8"]  # ARM ... START ... STOP
    assert T.handler(bytes((T.F_SEQUENCE | T.F_AUTH,)) + T.join_chunks(reqs)) == "ok:8"


def test_mutation_operators() -> None:
    frame = wire.encode(wire.T_SET_DEPTH, 1, {"depth_um": 500})
    assert T.mutate(frame, b"") == frame
    assert T.mutate(frame, b"\x04\x00\x00") == b""  # truncate at 0
    assert len(T.mutate(frame, b"\x02\x00\x41")) == len(frame) + 1  # insert
    grown = T.mutate(frame, b"\x09\x03\x00\x07\x00\x00")  # append 4 zeros, fix length
    assert len(grown) == len(frame) + 4 and grown[4:6] == b"\x06\x00"
    with pytest.raises(wire.WireError) as e:
        wire.decode(grown)
    assert e.value.code == wire.E_MALFORMED  # length consistent: the payload decoder saw it
    assert T.mutate(frame, b"\x08\x00\x02")[1] == T.TYPES[2]
    assert T.split_chunks(T.join_chunks([b"", b"a", b"bc" * 100])) == [b"", b"a", b"bc" * 100]


def test_serial_frame_above_max_frame_is_refused_by_both_decoders() -> None:
    # Zero bytes cost no COBS overhead, so a packet within MAX_PACKET can carry a
    # frame a few bytes over MAX_FRAME: both deframers pass it on, both frame
    # decoders refuse it as OVERSIZE.
    frame = bytes(wire.MAX_FRAME + 4)
    stream = hser.encode_packet(frame)
    assert hser.Deframer().feed(stream) == link.Deframer().feed(stream) == [frame]
    with pytest.raises(ProtocolError) as host:
        decode_frame(frame)
    with pytest.raises(wire.WireError) as fw:
        wire.decode(frame)
    assert host.value.code == fw.value.code == wire.E_OVERSIZE
