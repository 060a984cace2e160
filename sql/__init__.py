"""SQL resources (the top-level sql/ folder)."""
