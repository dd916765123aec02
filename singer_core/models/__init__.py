"""Neural network modules of the SINGER Net (official key layout)."""
