"""The problem-type pages: ``/problems/`` (list), ``/problems/<slug>`` (one
type, for people) and ``/problems/index.json`` (all types, for programs)."""

from __future__ import annotations

from flask import Response, abort, jsonify, render_template

from app.problems import bp
from app.web.problem_types import PROBLEM_TYPES, problem_type


@bp.get("/")
def list_problem_types() -> str:
    """Every problem type the app answers with, linked to its page."""
    return render_template("problems/index.html", problem_types=PROBLEM_TYPES)


@bp.get("/index.json")
def list_problem_types_json() -> Response:
    """``{"items": [{"type", "slug", "status", "title", "meaning", "action"}]}``:
    every problem type, ``type`` being the value problems carry."""
    return jsonify(
        {
            "items": [
                {"type": t.uri, "slug": t.slug, "status": t.status, "title": t.title, "meaning": t.meaning,
                 "action": t.action}
                for t in PROBLEM_TYPES
            ]
        }
    )  # fmt: skip


@bp.get("/<slug>")
def show_problem_type(slug: str) -> str:
    """One problem type's page: what it means and what to do (404 when unknown)."""
    found = problem_type(slug)
    if found is None:
        abort(404)
    return render_template("problems/type.html", problem_type=found)
