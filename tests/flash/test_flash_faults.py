"""The twin's flash as the flashing tests need it: littlefs's block count and ENOSPC,
and a fault plan that reaches the twin while its program runs."""

import time

from tests.flash.twinboard import TwinBoard


def test_the_flash_counts_blocks_and_runs_full_as_littlefs_does(tmp_path):
    # 16 blocks of 4 KiB: the root directory and board.json take one each (a
    # board.json of one block, whatever the size of today's board files)
    root = tmp_path / "flash"
    root.mkdir()
    (root / "board.json").write_text("{}")
    board = TwinBoard(root, flash_size=16 * 4096)
    try:
        out, err = board.exec(
            "import os, json\n"
            "print(os.statvfs('/')[3])\n"
            "f = open('/big', 'wb')\n"
            "f.write(bytes(5 * 4096))\n"  # 5 blocks
            "f.close()\n"
            "for i in range(2):\n"
            "    with open('/log', 'ab') as f:\n"  # appends, as the pen's log store does
            "        f.write(bytes(4096))\n"
            "with open('/fill', 'wb') as f:\n"
            "    f.write(bytes(7 * 4096))\n"  # the last 7 blocks
            "try:\n"
            "    with open('/log', 'ab') as f:\n"
            "        f.write(b'x')\n"
            "except OSError as e:\n"
            "    print('full', e.errno)\n"
            "os.remove('/big')\n"
            "with open('/log', 'ab') as f:\n"
            "    f.write(bytes(4096))\n"
            "print(os.statvfs('/')[3], os.stat('/log')[6])\n"
            "open('/fill', 'wb').close()\n"  # truncated: 6 blocks free again
            "with open('/bond.tmp', 'w') as f:\n"
            "    json.dump({'k': 'v' * 5000}, f)\n"  # a stream, as the bond store writes
            "os.rename('/bond.tmp', '/log')\n"  # renamed over: the log's 3 blocks are free
            "print(os.statvfs('/')[3])\n")
        assert not err, err
        assert out.split("\n")[:4] == ["14", "full 28", "4 12288", "11"], out
    finally:
        board.stop()


def test_a_fault_plan_reaches_a_running_program(tmp_path):
    root = tmp_path / "flash"
    root.mkdir()
    (root / "main.py").write_text(
        "import os, time\n"
        "while True:\n"
        "    time.sleep_ms(10)\n"
        "    try:\n"
        "        os.stat('/go')\n"
        "    except OSError:\n"
        "        continue\n"
        "    with open('/out.bin', 'wb') as f:\n"
        "        f.write(bytes(100))\n"
        "    break\n")
    board = TwinBoard(root)
    try:
        board.faults.corrupt_writes = 1  # delivered with the next tick's reply
        board.faults.corrupt_path = "out.bin"
        time.sleep(0.2)
        (root / "go").write_text("")
        board.wait_output(1, ">>> ")
        assert board.faults.corrupted == 1 and board.faults.corrupt_writes == 0
        data = (root / "out.bin").read_bytes()
        assert len(data) == 100 and data[50] == 0xFF and data.count(0) == 99
    finally:
        board.stop()
