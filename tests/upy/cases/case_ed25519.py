# Ed25519 verification and SHA-512 inside MicroPython (pen/ed25519.py), against
# signatures the cryptography package made and digests of CPython's hashlib.
import json

from pen.ed25519 import sha512, verify


def _vectors():
    with open("/data/ed25519.json") as f:
        return json.load(f)


def test_sha512_matches_hashlib():
    for msg, digest in _vectors()["sha512"]:
        assert sha512(bytes.fromhex(msg)) == bytes.fromhex(digest), len(msg) // 2


def test_signatures_by_cryptography_verify():
    for pub, msg, sig in _vectors()["sigs"]:
        assert verify(bytes.fromhex(pub), bytes.fromhex(msg), bytes.fromhex(sig))


def test_altered_message_signature_or_key_is_refused():
    pub, msg, sig = [bytes.fromhex(x) for x in _vectors()["sigs"][2]]
    assert not verify(pub, msg[:-1] + bytes((msg[-1] ^ 1,)), sig)
    assert not verify(pub, msg, sig[:10] + bytes((sig[10] ^ 4,)) + sig[11:])
    other = bytes.fromhex(_vectors()["sigs"][3][0])
    assert not verify(other, msg, sig)
    assert not verify(pub, msg, sig[:63])
    # s >= q (a malleated signature) is refused
    q = 2**252 + 27742317777372353535851937790883648493
    s = int.from_bytes(sig[32:], "little") + q
    assert not verify(pub, msg, sig[:32] + s.to_bytes(32, "little"))
