"""Operator-facing counters, exposed in Prometheus text format at ``/metrics``."""

from __future__ import annotations

from prometheus_client import Counter

transfers_created = Counter("paymux_transfers_created", "Transfers created", ["channel"])
transfer_transitions = Counter(
    "paymux_transfer_transitions", "Transfer status changes", ["channel", "status"]
)
channel_notifications = Counter(
    "paymux_channel_notifications", "Channel notifications by result", ["channel", "result"]
)
operator_alerts = Counter(
    "paymux_operator_alerts",
    "Events an operator must look at (mismatched notifications, late contradicting outcomes)",
    ["kind"],
)
sync_queries = Counter("paymux_sync_queries", "Channel queries made by the sync loop", ["channel"])
channel_calls = Counter("paymux_channel_calls", "Outbound channel calls", ["channel", "kind"])
webhook_attempts = Counter("paymux_webhook_attempts", "Webhook delivery attempts", ["ok"])
unknown_failure_codes = Counter(
    "paymux_unknown_channel_failure_codes",
    "Channel failure codes missing from the adapter's mapping (reported as channel_rejected)",
    ["channel"],
)
auth_failures = Counter(
    "paymux_auth_failures",
    "Failed authentications (unknown, revoked, expired or disabled key; blocked client)",
    ["reason"],
)
rate_limited = Counter("paymux_rate_limited", "Requests refused by a key's rate limit")
rate_limiter_unavailable = Counter(
    "paymux_rate_limiter_unavailable", "Requests seen while Redis (rate limits) was unreachable"
)
