"""Choosing which deployment serves a request. Knows nothing of wire formats."""
