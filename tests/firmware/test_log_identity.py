"""The pen's log carries its identity (issue 14 item 1): every BOOT record's ``a`` is
the log's id, drawn when the counters start afresh and kept with them, so a host
tells a log that restarted from the one it synced before."""

from memfs import MemFs
from pen import wire
from rig import Rig


def boot_ids(rig):
    return [r["a"] for r in rig.log(wire.K_BOOT)]


def test_boot_records_carry_the_log_id_kept_across_reboots():
    rig = Rig(MemFs())  # pairing set the key: the counters were committed
    rig.boot(reset_code=1)
    rig.boot(reset_code=2)
    ids = boot_ids(rig)
    assert len(ids) == 3 and ids[0] != 0 and ids == [ids[0]] * 3
    assert rig.store.c["log_id"] == ids[0]


def test_a_new_log_has_another_id():
    first, again = Rig(MemFs()), Rig(MemFs())  # two pens, or one whose flash was erased
    (a,), (b,) = boot_ids(first)[:1], boot_ids(again)[:1]
    assert a != b and again.log()[0]["seq"] == 1
