"""WSGI entry point for gunicorn: `gunicorn wsgi:app` (settings from the environment)."""

from fhirhub.app import create_app

app = create_app()
