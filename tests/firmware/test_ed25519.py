# pen/ed25519.py under CPython against the cryptography package (the MicroPython
# run is tests/upy/cases/case_ed25519.py).
import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st
from pen.ed25519 import sha512, verify


def _raw(key):
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@given(st.binary(max_size=300))
def test_sha512_matches_hashlib(msg):
    assert sha512(msg) == hashlib.sha512(msg).digest()


@given(st.binary(min_size=32, max_size=32), st.binary(max_size=100), st.integers(0, 511))
@settings(max_examples=25, deadline=None)
def test_verifies_what_cryptography_signs_and_nothing_altered(seed, msg, bit):
    key = Ed25519PrivateKey.from_private_bytes(seed)
    sig = key.sign(msg)
    assert verify(_raw(key), msg, sig)
    bad = bytearray(sig)
    bad[bit // 8] ^= 1 << (bit % 8)
    assert not verify(_raw(key), msg, bytes(bad))
    assert not verify(_raw(key), msg + b"x", sig)


def test_a_long_verification_lets_the_pen_feed_its_watchdog():
    # on the ESP32 the check takes far longer than here: poll() comes every 32 bits
    key = Ed25519PrivateKey.from_private_bytes(bytes(32))
    calls = []
    assert verify(_raw(key), b"m", key.sign(b"m"), lambda: calls.append(1))
    assert len(calls) >= 14  # two scalar multiplications of ~253 bits
