"""Store: append-only log with CRC, rotation, torn-tail recovery, atomic counters,
and power loss injected at every write point."""

import contextlib
import os

import pytest
from faultyfs import FaultyFs, PowerLoss
from pen import wire
from pen.fsio import Fs
from pen.store import DISK_SIZE, Store, unpack_record


def seqs(st, start=0):
    return [unpack_record(r)["seq"] for r in st.read(start, 10_000)[2]]


def test_append_read_pages(tmp_path):
    st = Store(Fs(str(tmp_path)))
    for i in range(300):
        assert st.append(wire.K_BOOT, 1000 + i, 0, 0, i, i * 2) == i + 1
    first, last, recs = st.read(100, 160)
    assert (first, last, len(recs)) == (1, 300, 160)
    got = [unpack_record(r) for r in recs]
    assert got[0]["seq"] == 100 and got[0]["a"] == 99 and got[0]["b"] == 198
    assert got[-1]["seq"] == 259
    # resumable by seq
    assert seqs(st, 260) == list(range(260, 301))


def test_rotation_drops_oldest_and_reports_first_seq(tmp_path):
    st = Store(Fs(str(tmp_path)), seg_records=10, max_segments=3)
    for _ in range(95):
        st.acknowledge(st.last_seq())  # a host syncs as it goes
        st.append(wire.K_BOOT)
    st.commit()
    first, last, _recs = st.read(0, 200)
    assert last == 95 and first == 71
    assert seqs(st) == list(range(71, 96))
    assert len([n for n in os.listdir(tmp_path) if n.startswith("log")]) == 3
    st2 = Store(Fs(str(tmp_path)), seg_records=10, max_segments=3)
    assert st2.append(wire.K_BOOT) == 96


def test_torn_tail_dropped_and_logged(tmp_path):
    st = Store(Fs(str(tmp_path)))
    for _ in range(5):
        st.append(wire.K_BOOT)
    seg = next(n for n in os.listdir(tmp_path) if n.startswith("log"))
    with open(tmp_path / seg, "ab") as f:
        f.write(b"\x06\x00\x00\x00\x00")
    st2 = Store(Fs(str(tmp_path)))
    assert st2.recovered == 5
    recs = [unpack_record(r) for r in st2.read(0, 100)[2]]
    assert [r["seq"] for r in recs] == [1, 2, 3, 4, 5, 7]
    assert recs[-1]["kind"] == wire.K_LOG_RECOVERED


def test_bad_crc_last_record_dropped(tmp_path):
    st = Store(Fs(str(tmp_path)))
    for _ in range(3):
        st.append(wire.K_BOOT)
    seg = tmp_path / next(n for n in os.listdir(tmp_path) if n.startswith("log"))
    data = bytearray(seg.read_bytes())
    data[-1] ^= 0xFF
    seg.write_bytes(bytes(data))
    st2 = Store(Fs(str(tmp_path)))
    assert seqs(st2) == [1, 2, 4]  # 3 dropped, its number burnt, 4 = LOG_RECOVERED


def test_bad_crc_in_the_middle_is_skipped_not_truncated(tmp_path):
    st = Store(Fs(str(tmp_path)))
    for _ in range(4):
        st.append(wire.K_BOOT)
    seg = tmp_path / next(n for n in os.listdir(tmp_path) if n.startswith("log"))
    data = bytearray(seg.read_bytes())
    data[DISK_SIZE + 5] ^= 0xFF
    seg.write_bytes(bytes(data))
    st2 = Store(Fs(str(tmp_path)))
    assert seqs(st2) == [1, 3, 4]
    assert st2.append(wire.K_BOOT) == 5


def test_counters_round_trip_and_crc(tmp_path):
    st = Store(Fs(str(tmp_path)))
    st.c["hp"] = [1, 2, 3, 4, 5]
    st.c["key"] = "ab" * 32
    st.commit()
    assert Store(Fs(str(tmp_path))).c["hp"] == [1, 2, 3, 4, 5]
    raw = (tmp_path / "state.dat").read_bytes()
    (tmp_path / "state.dat").write_bytes(raw.replace(b"[1, 2", b"[9, 2"))
    assert Store(Fs(str(tmp_path))).c["hp"] == [0, 0, 0, 0, 0]  # corrupt -> defaults


def _scenario(fs, log):
    # Appends, counter commits and segment rotation; records what was acknowledged.
    st = Store(fs, seg_records=4, max_segments=3)
    log["store"] = st
    for i in range(14):
        st.acknowledge(st.last_seq())  # the host synced what was there
        log["acked"].append(st.append(wire.K_ARMED, 1000 + i, 0, 0, i, i))
        if i % 3 == 1:
            log["pending"] = {"hp": [i, i * 14, i, i, 7], "nonces": [[f"{i:016x}", i]]}
            for k, v in log["pending"].items():
                st.c[k] = v
            st.commit()
            log["committed"] = log["pending"]


@pytest.mark.parametrize("torn", [0, 1, -1, DISK_SIZE - 1])
def test_power_loss_at_every_write_point(tmp_path, torn):
    n = 1
    while True:
        d = tmp_path / f"n{n}"
        fs = FaultyFs(str(d), fail_at=n, torn=torn)
        log = {"acked": [], "committed": None, "pending": None}
        with contextlib.suppress(PowerLoss):
            _scenario(fs, log)
        st = Store(Fs(str(d)), seg_records=4, max_segments=3)  # reboot
        present = seqs(st)
        first = st.first_seq()
        lost = [s for s in log["acked"] if s >= first and s not in present]
        assert not lost, f"write point {n}: acknowledged records lost {lost}"
        # rotation only ever drops whole old segments: the newest 2 segments' worth stay
        assert all(s in present for s in log["acked"][-8:]), f"write point {n}"
        got = {k: st.c[k] for k in ("hp", "nonces")}
        old = log["committed"] or {"hp": [0, 0, 0, 0, 0], "nonces": []}
        assert got in (old, log["pending"] or old), f"write point {n}: torn counters {got}"
        st.acknowledge(st.last_seq())
        new = st.append(wire.K_BOOT)
        assert new > max(log["acked"] + present + [0]), f"write point {n}: seq reused"
        assert len(set(present)) == len(present)
        if not fs.dead:
            break
        n += 1
    assert n > 20  # every write point of the scenario was exercised


def test_reads_from_every_seq_after_numbers_were_burnt(tmp_path):
    # A page reads just its own bytes when record k of a segment has seq first + k,
    # and falls back to scanning the segment when a number was burnt (torn tail) or
    # the record there is damaged: every start point still gets the right records.
    st = Store(Fs(str(tmp_path)), seg_records=8)
    for _ in range(5):
        st.append(wire.K_BOOT)
    seg = tmp_path / "log00000001.bin"
    with open(seg, "ab") as f:
        f.write(b"\x06\x00\x00")  # torn: seq 6 burnt, LOG_RECOVERED becomes 7
    st = Store(Fs(str(tmp_path)), seg_records=8)
    for _ in range(10):
        st.append(wire.K_BOOT)
    data = bytearray(seg.read_bytes())
    data[2 * DISK_SIZE + 7] ^= 0x01  # seq 3's record damaged
    seg.write_bytes(bytes(data))
    st = Store(Fs(str(tmp_path)), seg_records=8)
    everything = seqs(st)
    assert 6 not in everything and 3 not in everything and everything[-1] == st.last_seq()
    for start in range(0, st.last_seq() + 2):
        want = [s for s in everything if s >= start]
        assert seqs(st, start) == want, start
        for n in (1, 2, 5):
            got = [unpack_record(r)["seq"] for r in st.read(start, n)[2]]
            assert got == want[:n], (start, n)
