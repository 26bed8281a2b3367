"""Money: what a request cost, and what it would have cost elsewhere."""
