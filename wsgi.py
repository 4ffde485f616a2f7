"""WSGI entry point for gunicorn: `gunicorn wsgi:app` (settings from the environment).

Run it as `fhirhub serve` does (fhirhub/launcher.py): gthread workers with threads to spare
and `--config python:fhirhub.gunicorn_hooks` (Subscription websockets close on shutdown, and
the errors gunicorn answers itself, such as 414, are OperationOutcomes)."""

from fhirhub.app import create_app

app = create_app()
