"""The server's collector tuning: startup objects frozen, young collections rarer, and
cyclic garbage made afterwards still collected without anyone calling gc.collect()."""

from __future__ import annotations

import subprocess
import sys

PROGRAM = """
import gc, weakref
from paymux.gc_tuning import YOUNG_THRESHOLD, tune_for_serving

startup = [[i] for i in range(50_000)]  # what startup leaves alive
tune_for_serving()
assert gc.get_threshold()[0] == YOUNG_THRESHOLD
assert gc.get_freeze_count() >= 50_000

class Node:
    pass

collected = 0
def gone(_ref):
    global collected
    collected += 1

refs = []
for _ in range(20_000):  # cycles a request leaves behind (futures, tracebacks...)
    a, b = Node(), Node()
    a.other, b.other = b, a
    refs.append(weakref.ref(a, gone))
    del a, b
assert collected > 15_000, collected  # freed by the young-generation passes alone
print("ok")
"""


def test_tuned_collector_freezes_startup_and_still_collects_cycles() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
