"""Database preparation before serving: indexes, then seed data into an empty database."""

from __future__ import annotations

from fhirhub.config import Settings


def prepare_database_contents(settings: Settings) -> None:
    """Create indexes and load the default seed set when the database is empty."""
    # Filled in by the storage and seed modules as they land.
    return None
