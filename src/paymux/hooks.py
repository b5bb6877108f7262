"""Named hook points: the only places where a test or the benchmark may attach behaviour to
a production path. Production attaches nothing, so reaching a point is one dict lookup.

A point is reached by name (``hooks.reach("after_pending")``); tests attach to it
(``hooks.attach``) in the process that runs the gateway, e.g. to kill it there like kill -9
(tests/crash_gateway/). The names are fixed here so a typo fails at attach time, and
tests/unit/test_hooks.py checks every ``reach`` in the source names one of them.
"""

from __future__ import annotations

from collections.abc import Callable

POINTS: dict[str, str] = {
    # service/transfers.py, create: the points whose interleaving with a crash matters to the
    # retry contract.
    "after_pending": "the transfer and its hold are committed; the channel not yet called",
    "after_send": "the channel answered; the outcome is not yet recorded",
}

Hook = Callable[[], None]
_attached: dict[str, list[Hook]] = {}


def reach(point: str) -> None:
    """Run whatever is attached to ``point`` (nothing, in production)."""
    hooks = _attached.get(point)
    if hooks:
        for hook in tuple(hooks):
            hook()


def attach(point: str, hook: Hook) -> Callable[[], None]:
    """Run ``hook`` whenever ``point`` is reached; returns the function that detaches it."""
    if point not in POINTS:
        raise ValueError(f"no hook point {point!r}; known: {', '.join(sorted(POINTS))}")
    _attached.setdefault(point, []).append(hook)

    def detach() -> None:
        hooks = _attached.get(point, [])
        if hook in hooks:
            hooks.remove(hook)
        if not hooks:
            _attached.pop(point, None)

    return detach
