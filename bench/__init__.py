"""Load benchmark of the Paymux gateway against a floor server, in one run (issue 5)."""
