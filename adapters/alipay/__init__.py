"""Paymux's Alipay channel (OpenAPI + RSA2 fund transfers) and its sandbox simulator.

Modules: ``mapping`` (pure field/status/code mapping), ``signing`` (RSA2 sign/verify),
``channel`` (the Channel implementation), ``keys`` (sandbox key files), ``sandbox`` and
``sandbox_orders`` (the local gateway simulator).
"""
