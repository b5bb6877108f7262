"""Operator-facing counters, exposed in Prometheus text format at ``/metrics``."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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

# --- observability (request latency, channel calls, state gauges refreshed at scrape) ---
http_request_seconds = Histogram(
    "paymux_http_request_duration_seconds",
    "HTTP request latency by route template",
    ["method", "route", "status"],
)
channel_call_seconds = Histogram(
    "paymux_channel_call_duration_seconds",
    "Channel call latency (send, query, cancel) by outcome",
    ["channel", "kind", "outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30),
)
transfers_in_flight = Gauge(
    "paymux_transfers_in_flight", "Transfers waiting in a non-final status, now", ["status"]
)
oldest_processing_age = Gauge(
    "paymux_oldest_processing_transfer_age_seconds",
    "Time since the oldest processing transfer entered processing (0 when none)",
)
outbox_lag = Gauge(
    "paymux_outbox_lag_seconds", "Age of the oldest event not yet relayed (0 when none)"
)
outbox_backlog = Gauge("paymux_outbox_backlog", "Events not yet relayed to the delivery schedule")
webhook_backlog = Gauge("paymux_webhook_backlog", "Webhook deliveries still pending", ["due"])
webhook_failure_ratio = Gauge(
    "paymux_webhook_failure_ratio", "Failed share of the last 1000 webhook delivery attempts"
)
gauge_refresh_failures = Counter(
    "paymux_gauge_refresh_failures", "Scrapes whose database gauges could not be refreshed"
)
reconciliation_open = Gauge(
    "paymux_reconciliation_open_discrepancies",
    "Open reconciliation discrepancies (alert on > 0; critical ones need a person now)",
    ["channel", "kind", "severity"],
)
