"""WSGI entry point for gunicorn: `gunicorn wsgi:app` (settings from the environment).

For Subscription websockets run it as `fhirhub serve` does (fhirhub/launcher.py): gthread
workers with threads to spare and `--config python:fhirhub.gunicorn_hooks`."""

from fhirhub.app import create_app

app = create_app()
