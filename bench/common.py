"""A Flask test client signed in as a new account, for the benchmarks that
read the dashboard or the exports through the app (as tests/conftest.py's
``make_user`` and ``sign_in`` do for the tests)."""

from __future__ import annotations

import uuid
from typing import Any


def signed_in_client(app: Any, role: str) -> Any:
    """A ``FlaskClient`` of ``app`` whose session is a new ``role`` account.

    The account (``bench-<role>-<8 hex>``) has no usable password, so it
    cannot sign in by form; the client's session cookie carries Flask-Login's
    ``_user_id`` instead, skipping the password hash. Needs the app's
    database to be migrated.
    """
    from app.extensions import db
    from app.models.access import User

    with app.app_context():
        user = User(username=f"bench-{role}-{uuid.uuid4().hex[:8]}", password_hash="!unusable", role=role)
        db.session.add(user)
        db.session.commit()
        user_id = user.id
        db.session.remove()
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = str(user_id)
        session["_fresh"] = True
    return client
