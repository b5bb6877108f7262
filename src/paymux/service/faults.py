"""Named crash points for fault-injection tests (the ``fault_injection`` setting).

A test starts a gateway with ``PAYMUX_FAULT_INJECTION=crash_<point>``; the process then dies
at that point (like kill -9: no cleanup, no response) the first time a request reaches it.
Points sit between the steps whose interleaving with a crash matters to the retry contract:

- ``after_pending``: the transfer and its hold are committed, the channel not yet called
  (the request's idempotency lease is held and never renewed again).
- ``after_send``: the channel answered, the outcome is not yet recorded.
"""

from __future__ import annotations

import logging
import os

from paymux.settings import Settings

log = logging.getLogger(__name__)

CRASH_EXIT_CODE = 17
POINTS = ("after_pending", "after_send")


def crash_point(settings: Settings, point: str) -> None:
    """Exit the process at once if the settings name this crash point."""
    if settings.fault_injection == f"crash_{point}":
        log.critical("fault injection: exiting at %s", point)
        os._exit(CRASH_EXIT_CODE)
