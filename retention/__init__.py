"""The retention policy (pure) and the nightly run that applies it (R9, R10)."""
