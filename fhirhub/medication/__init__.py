"""Medication safety: shipped drug knowledge, write-time checks on MedicationRequest, and
the CDS Hooks services that run the same checks for an EHR's draft orders."""
