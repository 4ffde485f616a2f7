"""Medication safety at write time: what an order is made of, the pure checks, findings as
DetectedIssues (contained, then standalone), overrides and their audit."""
