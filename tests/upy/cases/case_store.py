# The store inside MicroPython over its real filesystem: append, read pages,
# rotation, torn-tail recovery, power loss at every write point.
import os

from faultyfs import FaultyFs, PowerLoss
from pen import wire
from pen.fsio import Fs
from pen.store import Store, unpack_record

_n = [0]


def _dir():
    _n[0] += 1
    return "/data/s%d" % _n[0]


def test_append_and_read():
    st = Store(Fs(_dir()))
    for i in range(10):
        assert st.append(wire.K_BOOT, 100 + i, 0, 0, i, 0) == i + 1
    first, last, recs = st.read(4, 3)
    assert (first, last) == (1, 10)
    assert [unpack_record(r)["seq"] for r in recs] == [4, 5, 6]
    assert unpack_record(recs[0])["a"] == 3


def test_rotation_keeps_seq():
    d = _dir()
    st = Store(Fs(d), seg_records=4, max_segments=3)
    for i in range(30):
        st.acknowledge(st.last_seq())  # the host synced as it went
        st.append(wire.K_BOOT, i)
    st.commit()
    first, last, recs = st.read(0, 100)
    assert last == 30 and first > 1
    assert [unpack_record(r)["seq"] for r in recs] == list(range(first, 31))
    st2 = Store(Fs(d), seg_records=4, max_segments=3)
    assert st2.append(wire.K_BOOT) == 31


def test_torn_tail_recovered():
    d = _dir()
    fs = Fs(d)
    st = Store(fs)
    for i in range(5):
        st.append(wire.K_BOOT, i)
    name = [n for n in os.listdir(d) if n.startswith("log")][0]
    fs.append(name, b"\x06\x00\x00")  # a torn sixth record
    st2 = Store(Fs(d))
    assert st2.recovered == 3
    first, last, recs = st2.read(0, 100)
    kinds = [unpack_record(r)["kind"] for r in recs]
    assert kinds[:5] == [wire.K_BOOT] * 5
    assert kinds[-1] == wire.K_LOG_RECOVERED
    assert unpack_record(recs[-1])["seq"] == 7  # 6 was burnt


def test_power_loss_at_every_write_point():
    n = 1
    while True:
        d = _dir()
        fs = FaultyFs(d, fail_at=n, torn=-1)
        acked = []
        committed = 0
        pending = 0
        try:
            st = Store(fs, seg_records=3, max_segments=8)
            for i in range(8):
                acked.append(st.append(wire.K_ARMED, 1000 + i, 0, 0, i))
                if i % 3 == 2:
                    pending = i
                    st.c["last_end"] = i
                    st.commit()
                    committed = i
        except PowerLoss:
            pass
        st2 = Store(Fs(d), seg_records=3, max_segments=8)
        seqs = [unpack_record(r)["seq"] for r in st2.read(0, 200)[2]]
        for s in acked:
            assert s in seqs, (n, s)
        assert st2.c["last_end"] in (committed, pending), (n, st2.c["last_end"])
        new = st2.append(wire.K_BOOT)
        assert new > max(seqs + [0]), n
        if not fs.dead:
            break
        n += 1
    assert n > 10
