"""WSGI entry point: ``flask --app wsgi run`` or any WSGI server."""

from app import create_app
from app.config import ConfigError

try:
    app = create_app()
except ConfigError as error:
    # One line for whoever set the environment, not a traceback.
    raise SystemExit(f"configuration error: {error}") from None
