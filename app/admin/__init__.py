"""Administration pages, blueprint ``admin`` under ``/admin`` (admins only)."""

from __future__ import annotations

from flask import Blueprint, render_template

from app.auth.guards import requires
from app.models.access import Permission
from app.services import access

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.get("/audit")
@requires(Permission.ADMINISTER)
def list_audit_events() -> str:
    """The newest 200 audit events: exports and bulk actions (who, when,
    which filter, how many rows)."""
    return render_template("admin/audit.html", events=access.list_audit_events(200))
