"""Choosing the channel that pays a transfer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

DEFAULT_PREFERENCE: tuple[str, ...] = ("alipay", "wechat")


class RoutingError(ValueError):
    """No channel can take the transfer; ``code`` is the stable API error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


CHANNEL_UNAVAILABLE = "channel_unavailable"
PAYEE_TYPE_UNSUPPORTED = "payee_type_unsupported"


def route(
    payee_type: str,
    requested: str | None,
    channels: Mapping[str, frozenset[str]],
    preference: Sequence[str] = DEFAULT_PREFERENCE,
) -> str:
    """The channel for a transfer to ``payee_type``.

    ``channels`` maps each available channel to the payee types it pays. A ``requested``
    channel must exist and pay ``payee_type`` (no silent fallback: the merchant asked for
    it). Otherwise: the first channel in ``preference`` that pays it, then any other
    channel that does, in name order.
    """
    if requested is not None:
        if requested not in channels:
            raise RoutingError(CHANNEL_UNAVAILABLE, f"channel {requested!r} is not available")
        if payee_type not in channels[requested]:
            raise RoutingError(
                PAYEE_TYPE_UNSUPPORTED,
                f"channel {requested!r} does not pay payee type {payee_type!r}",
            )
        return requested
    if not channels:
        raise RoutingError(CHANNEL_UNAVAILABLE, "no channel is available")
    ordered = [name for name in preference if name in channels]
    ordered += sorted(name for name in channels if name not in ordered)
    for name in ordered:
        if payee_type in channels[name]:
            return name
    raise RoutingError(
        PAYEE_TYPE_UNSUPPORTED, f"no available channel pays payee type {payee_type!r}"
    )
