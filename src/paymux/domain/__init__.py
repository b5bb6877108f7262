"""Paymux."""
