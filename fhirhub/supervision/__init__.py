"""`fhirhub serve` keeps its parts running: PostgreSQL, FerretDB, gunicorn and the
notification worker are restarted with backoff when they die, and their state is published
for `/healthz` (board.py)."""
