"""Local mock upstreams that speak the real provider wire formats (``hedge mock``)."""
