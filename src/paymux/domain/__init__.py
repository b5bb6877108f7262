"""Paymux's pure domain: money, fees, ledger rules, transfer states, routing, ids.

Plain Python with no I/O (no database, network, files or environment), so every rule here
is testable without infrastructure. Import from the submodules, e.g.
``from paymux.domain.fees import compute_fee``.
"""
