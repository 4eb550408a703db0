"""File formats: the edge log (INTERFACES §1) and decoder events as JSON Lines / table (§2)."""
