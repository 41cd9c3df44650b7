"""Access control: who may call which route.

* Operators sign in to the dashboard with a user name and password
  (Flask-Login session); each view names the :class:`Permission` it needs.
* Workers call ``/api/`` with ``Authorization: Bearer <token>``; the API
  ignores session cookies and the dashboard ignores bearer tokens, so neither
  credential opens the other's door.
* Every form is CSRF-protected (Flask-WTF), login attempts are rate-limited
  (Flask-Limiter), and security headers with a Content-Security-Policy that
  forbids inline scripts are set on every response (flask-talisman).

The route-table test (tests/integration/test_access_control.py) walks every
registered route and proves each one outside :data:`PUBLIC_ENDPOINTS`
refuses anonymous requests and requests with the wrong kind of credential.
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("auth", __name__)

from app.auth import views  # noqa: E402,F401
