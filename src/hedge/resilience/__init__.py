"""Retries, failover and circuit breakers: they wrap an attempt and know nothing of wire formats."""
