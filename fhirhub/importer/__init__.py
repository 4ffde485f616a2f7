"""`fhirhub import`: load Bundles, single resources and NDJSON files through the service layer."""
