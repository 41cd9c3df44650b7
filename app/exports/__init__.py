"""Support exports of job errors, blueprint ``exports`` under ``/exports``."""

from flask import Blueprint

bp = Blueprint("exports", __name__, url_prefix="/exports")

from app.exports import views  # noqa: E402,F401
