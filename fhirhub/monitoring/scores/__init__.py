"""Risk scores as pure functions over plain values, each with its published source."""
