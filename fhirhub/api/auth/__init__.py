"""The SMART/OAuth 2.0 server's endpoints and pages under /auth, and the /fhir guard."""
