"""Readings in: vital-sign Observations to normalised readings (UCUM units)."""
