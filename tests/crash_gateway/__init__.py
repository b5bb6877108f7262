"""`paymux serve` with a crash attached to a named hook point, for fault-injection tests.

``PAYMUX_FAULT_INJECTION=crash_<point>`` (a point of :data:`paymux.hooks.POINTS`, e.g.
``crash_after_pending``) makes this process exit at once, with no cleanup and no response,
as kill -9 would, the first time a request reaches that point. Without it this is plain
`paymux serve`. Production never runs this module: the hook is attached here, in the
gateway's own process (one worker), not by anything in ``paymux``.

    python -m tests.crash_gateway [serve options]

It runs as a package's ``__main__`` (like ``python -m paymux``) so that uvicorn's worker
processes, when there are several, do not import it again.
"""

from __future__ import annotations

import logging
import os

from paymux import hooks

CRASH_EXIT_CODE = 17
log = logging.getLogger("paymux.tests.crash")


def attach_crash(fault: str) -> None:
    point = fault.removeprefix("crash_")
    if point == fault:
        raise SystemExit(f"PAYMUX_FAULT_INJECTION must be crash_<point>, not {fault!r}")

    def crash() -> None:
        log.critical("fault injection: exiting at %s", point)
        os._exit(CRASH_EXIT_CODE)

    hooks.attach(point, crash)
