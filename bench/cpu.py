"""CPU time per process group, read from /proc (Linux), for "CPU ms per transfer".

Throughput on a shared two-core machine moves with whatever else runs; the CPU each of our
processes spends per request does not (much). A group is a set of root processes and all
their live descendants; its CPU is the sum over them of user + system time, plus the time of
children they already reaped (``cutime``/``cstime``), so a worker that exits between two
snapshots is still counted. PostgreSQL backends are matched by their process title (the bench
database's name), since the postmaster is shared with every other client of the server.

Elsewhere than Linux every reading is empty and the harness reports no CPU columns.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    ticks: int  # utime + stime + cutime + cstime
    title: str


def _read(pid: int) -> Proc | None:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        title = (
            (PROC / str(pid) / "cmdline")
            .read_bytes()
            .replace(b"\0", b" ")
            .decode("utf-8", "replace")
        )
    except OSError:
        return None  # exited between the listing and the read
    # The command name (field 2) may hold spaces or parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): ppid is field 4, utime..cstime are fields 14..17.
    return Proc(pid, int(fields[1]), sum(int(x) for x in fields[11:15]), title.strip())


def processes() -> dict[int, Proc]:
    if not PROC.is_dir():
        return {}
    found: dict[int, Proc] = {}
    for entry in os.listdir(PROC):
        if entry.isdigit():
            proc = _read(int(entry))
            if proc is not None:
                found[proc.pid] = proc
    return found


def tree(procs: dict[int, Proc], roots: Iterable[int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for p in procs.values():
        children.setdefault(p.ppid, []).append(p.pid)
    seen: set[int] = set()
    todo = [r for r in roots if r in procs]
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(children.get(pid, []))
    return seen


def machine_busy_ticks() -> int:
    """All CPUs' non-idle time since boot (everyone's work, ours and the other sessions')."""
    try:
        first = (PROC / "stat").read_text().splitlines()[0].split()
    except OSError:
        return 0
    # user nice system idle iowait irq softirq steal ...: idle and iowait are not work.
    values = [int(x) for x in first[1:9]]
    return sum(values) - values[3] - values[4]


Selector = Callable[[dict[int, Proc]], set[int]]


def roots(*pids: int | None) -> Selector:
    wanted = [p for p in pids if p]
    return lambda procs: tree(procs, wanted)


def titled(*needles: str) -> Selector:
    """Processes whose title holds every needle (PostgreSQL backends: 'postgres: ... db')."""
    return lambda procs: {p.pid for p in procs.values() if all(n in p.title for n in needles)}


def postgres_server(bench_db: str) -> Selector:
    """The postmaster and its helpers (checkpointer, WAL writer, ...), not client backends.

    Shared with every other user of the server, so this group includes their WAL work too.
    """

    def select(procs: dict[int, Proc]) -> set[int]:
        masters = {p.pid for p in procs.values() if p.title.split(" ")[0].endswith("/bin/postgres")}
        return {
            p.pid
            for p in procs.values()
            if p.pid in masters or (p.ppid in masters and not _is_client_backend(p.title, bench_db))
        }

    return select


def _is_client_backend(title: str, bench_db: str) -> bool:
    # "postgres: 15/main: <user> <database> <host(port)> <state>": background processes have
    # no host; any client backend (ours or another session's) has one.
    return "(" in title and ")" in title and not title.startswith("postgres: autovacuum")


@dataclass
class Meter:
    """Named process groups; ``snapshot()`` before and after, ``delta_ms`` per group."""

    groups: dict[str, Selector] = field(default_factory=dict)

    def snapshot(self) -> dict[str, dict[int, int]]:
        procs = processes()
        snap = {
            name: {pid: procs[pid].ticks for pid in select(procs)}
            for name, select in self.groups.items()
        }
        snap["_machine"] = {0: machine_busy_ticks()}
        return snap

    @staticmethod
    def delta_ms(
        before: dict[str, dict[int, int]], after: dict[str, dict[int, int]]
    ) -> dict[str, float]:
        """CPU ms per group between two snapshots, process by process.

        A process that started in between counts whole; one that exited in between is lost
        unless a process of the group reaped it (then it is in that one's children time).
        """
        out: dict[str, float] = {}
        for name, now in after.items():
            then = before.get(name, {})
            ticks = sum(max(0, t - then.get(pid, 0)) for pid, t in now.items())
            out[name] = ticks * 1000 / _TICK
        return out
