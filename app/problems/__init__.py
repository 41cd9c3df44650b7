"""Blueprint "problems": the problem-type pages, public documentation that a
problem's ``type`` links to (the catalog: :mod:`app.web.problem_types`).

``/problems/`` lists the types, ``/problems/<slug>`` says what one means and
what to do, ``/problems/index.json`` lists them for programs. Public: they
hold no data, and a developer reading a problem must be able to follow its
type.
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("problems", __name__, url_prefix="/problems")

from app.problems import views  # noqa: E402,F401  (registers the routes)
