"""Who may call, which models, and how much: virtual keys, budgets and rate limits."""
