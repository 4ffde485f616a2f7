"""Pure scheduling rules over FHIR JSON and datetimes (no IO)."""
