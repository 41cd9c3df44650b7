"""The worker-facing JSON API, blueprint ``api`` under ``/api/v1``."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

from app.api import failure_groups, views  # noqa: E402,F401  (registers the routes on bp)
