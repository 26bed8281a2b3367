"""The batch lane: flexible-latency work scheduled for the lowest price that still meets its deadline."""
