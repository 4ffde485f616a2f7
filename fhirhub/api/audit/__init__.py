"""AuditEvents of requests: recorded per request and Bundle entry, searched by admins."""
