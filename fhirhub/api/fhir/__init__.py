"""The FHIR REST endpoint under /fhir: thin views, negotiation, rendering, errors."""
