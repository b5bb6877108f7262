"""bench/cpu.py reads CPU time per process group from /proc (Linux only)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from bench import cpu

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

BUSY = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
PARENT = (
    "import subprocess, sys, time\n"
    "time.sleep(0.3)\n"
    f"subprocess.run([sys.executable, '-c', {BUSY!r}])\n"
    "time.sleep(30)\n"
)


def test_a_group_counts_the_cpu_of_a_child_its_root_started_and_reaped() -> None:
    # The root burns next to nothing itself; its child burns 0.3 s and has exited by the end.
    parent = subprocess.Popen([sys.executable, "-c", PARENT])
    try:
        meter = cpu.Meter({"parent": cpu.roots(parent.pid)})
        before = meter.snapshot()
        assert parent.pid in before["parent"]
        for _ in range(100):
            if meter.delta_ms(before, meter.snapshot())["parent"] >= 250:
                break
            time.sleep(0.1)
        assert meter.delta_ms(before, meter.snapshot())["parent"] >= 250
    finally:
        parent.kill()
        parent.wait()


def test_process_titles_trees_and_machine_time_are_read() -> None:
    procs = cpu.processes()
    me = procs[os.getpid()]
    assert "python" in me.title or "pytest" in me.title
    assert me.pid in cpu.tree(procs, [me.ppid])
    assert cpu.machine_busy_ticks() > 0
    assert cpu.titled("no such title, anywhere")(procs) == set()
