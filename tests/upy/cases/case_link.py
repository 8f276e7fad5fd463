# The link layer (pen/link.py) inside MicroPython: fragmentation at every ATT MTU
# with reassembly, the defined fragment errors, COBS and CRC-16 over serial.
from pen import link, wire


def _frame(n):
    return bytes([(i * 7 + 3) & 0xFF for i in range(n)])


def test_fragment_reassemble_every_mtu():
    for size in (1, 18, 19, 244, 1000, 4096):
        frame = _frame(size)
        for mtu in range(23, 518, 7):
            frags = link.fragment(frame, mtu, mtu)
            r = link.Reassembler()
            out = None
            for i in range(len(frags)):
                assert len(frags[i]) <= mtu - 3
                out = r.feed(frags[i])
                if i < len(frags) - 1:
                    assert out is None
            assert out == frame


def _code(fn):
    try:
        fn()
    except wire.WireError as e:
        return e.code
    return None


def test_fragment_errors():
    f = link.fragment(_frame(100), 23, 5)
    r = link.Reassembler()
    r.feed(f[0])
    r.feed(f[1])
    assert _code(lambda: r.feed(f[1])) == wire.E_DUPLICATE_FRAGMENT
    assert _code(lambda: r.feed(f[3])) == wire.E_OUT_OF_ORDER
    assert _code(lambda: link.Reassembler().feed(f[1])) == wire.E_OUT_OF_ORDER
    assert _code(lambda: link.Reassembler().feed(b"\xc0\x00")) == wire.E_TRUNCATED


def test_crc_and_cobs():
    assert link.crc16(b"123456789") == 0x29B1
    for data in (b"", b"\x00", b"\x00\x00", bytes(range(256)) * 3, b"\x01" * 600):
        enc = link.cobs_encode(data)
        assert 0 not in enc
        assert link.cobs_decode(enc) == data


def test_serial_deframer():
    frames = [wire.encode(wire.T_SET_DEPTH, 7, {"depth_um": 500}),
              wire.encode(wire.T_GET_STATUS, 8, {})]
    stream = b"".join(link.encode_packet(f) for f in frames)
    bad = bytearray(link.encode_packet(frames[0]))
    bad[3] ^= 0x10
    out = link.Deframer().feed(bytes(bad) + stream)
    assert isinstance(out[0], wire.WireError) and out[0].code == wire.E_BAD_CRC
    assert out[1:] == frames
