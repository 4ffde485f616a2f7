"""Outbound channels: email over SMTP, SMS through an HTTP gateway, FHIR rest-hook.

Used only in `fhirhub worker` (web requests never call out). Every message sent, or given
up on, is recorded as a FHIR `Communication`. See README "Architecture: hub mechanisms".
"""
