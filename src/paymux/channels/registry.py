"""Loads channel adapters from the ``paymux.channels`` entry-point group.

A new channel is a package with a ``create_channel(settings)`` factory and one entry point;
nothing in ``paymux`` names it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any, cast

from paymux.channels.base import Channel

log = logging.getLogger(__name__)

Factory = Callable[[Mapping[str, Any]], Channel]


def available_factories() -> dict[str, Factory]:
    return {ep.name: cast(Factory, ep.load()) for ep in entry_points(group="paymux.channels")}


def load_channels(settings: Mapping[str, Mapping[str, Any]]) -> dict[str, Channel]:
    """One channel per configured name that has a registered adapter."""
    factories = available_factories()
    channels: dict[str, Channel] = {}
    for name, values in settings.items():
        factory = factories.get(name)
        if factory is None:
            log.warning("channel %r is configured but no adapter is installed", name)
            continue
        channels[name] = factory(values)
    return channels
