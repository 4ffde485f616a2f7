"""CDS Hooks 2.0 services (cds-hooks.hl7.org/2.0) running the medication checks over an
EHR's draft orders: discovery, the service calls and the feedback endpoint."""
