"""Hypothesis strategies giving each fuzz target's input bytes (``targets.TARGETS``).

Every strategy mixes raw random bytes with structure-aware inputs built by the
``targets.recipe_*`` functions from one short drawn byte string: valid encoded
messages of every type (``targets.corpus``) damaged by ``targets.mutate``, requests
the rig's pens understand, fragment lists and serial streams of valid frames (and
of long ones) then damaged. One or two draws per example: the bench runs 100,000
examples a target.
"""

from __future__ import annotations

from hypothesis import strategies as st

from tests.fuzz import targets as T

recipes = st.binary(min_size=2, max_size=26)

frames = st.one_of(st.binary(max_size=300), recipes.map(T.recipe_frame))
handler_inputs = st.one_of(st.binary(min_size=1, max_size=300), recipes.map(T.recipe_handler),
                           recipes.map(T.recipe_handler))
fragment_inputs = st.one_of(st.binary(max_size=400), recipes.map(T.recipe_fragments))
serial_inputs = st.one_of(st.binary(max_size=400), recipes.map(T.recipe_serial))

INPUTS: dict[str, st.SearchStrategy[bytes]] = {
    "wire_decode": frames,
    "handler": handler_inputs,
    "fw_reassembler": fragment_inputs,
    "fw_deframer": serial_inputs,
    "host_decode": frames,
    "host_reassembler": fragment_inputs,
    "host_deframer": serial_inputs,
    "differential": frames,
}
