"""Paymux: a payment-aggregation gateway."""

__version__ = "0.1.0"
