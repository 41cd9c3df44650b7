"""Who may see and change what: operator accounts, worker tokens, the audit log."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import JSONDocument, UTCDateTime, utcnow

USERNAME_MAX_LENGTH = 150
#: Longest worker token name, in characters.
TOKEN_NAME_MAX_LENGTH = 100


class Role(StrEnum):
    """An operator's role. Each grants the permissions in :data:`ROLE_PERMISSIONS`."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    SUPPORT = "support"
    ADMIN = "admin"


class Permission(StrEnum):
    """One thing a signed-in person may do."""

    VIEW_JOBS = "view_jobs"  # the dashboard, job pages
    ACT_ON_JOBS = "act_on_jobs"  # requeue, acknowledge
    EXPORT = "export"  # CSV / NDJSON exports of job errors and entities
    ADMINISTER = "administer"  # the audit log (users and tokens: CLI)


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.VIEW_JOBS}),
    Role.OPERATOR: frozenset({Permission.VIEW_JOBS, Permission.ACT_ON_JOBS}),
    Role.SUPPORT: frozenset({Permission.VIEW_JOBS, Permission.EXPORT}),
    Role.ADMIN: frozenset(Permission),
}


class User(db.Model):
    """An operator account for the dashboard.

    ``password_hash`` is a Werkzeug hash (scrypt by default), never the
    password. ``username`` is compared exactly (case and all).
    """

    __tablename__ = "users"
    __table_args__ = (
        sa.CheckConstraint("role IN (" + ", ".join(f"'{r.value}'" for r in Role) + ")", name="role"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(USERNAME_MAX_LENGTH), nullable=False, unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    role: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    active: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: Part of the id kept in each signed-in session (Flask-Login's
    #: "alternative tokens"): raised when the account is disabled or its
    #: password changes, which ends every session of the account at once.
    session_generation: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0, server_default="0")

    # -- Flask-Login's user protocol ---------------------------------------
    @property
    def is_authenticated(self) -> bool:
        """Always true for a loaded account (Flask-Login protocol)."""
        return True

    @property
    def is_active(self) -> bool:
        """Whether the account may sign in (Flask-Login protocol)."""
        return self.active

    @property
    def is_anonymous(self) -> bool:
        """Always false (Flask-Login protocol)."""
        return False

    def get_id(self) -> str:
        """The id Flask-Login keeps in the session: ``"<id>.<session_generation>"``."""
        return f"{self.id}.{self.session_generation}"

    def can(self, permission: Permission) -> bool:
        """Whether this account's role grants ``permission``."""
        return self.active and permission in ROLE_PERMISSIONS[Role(self.role)]

    def __repr__(self) -> str:
        return f"<User {self.username} {self.role}>"


class WorkerToken(db.Model):
    """A bearer token a worker program authenticates with.

    Only the SHA-256 of the token is stored (tokens are 256-bit random, so a
    fast hash is enough; a leaked table gives no usable token). ``prefix`` is
    the token's first characters, shown to tell tokens apart.
    """

    __tablename__ = "worker_tokens"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(sa.String(TOKEN_NAME_MAX_LENGTH), nullable=False, unique=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), nullable=False, unique=True)
    prefix: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    def __repr__(self) -> str:
        return f"<WorkerToken {self.name} {self.prefix}…>"


class AuditEvent(db.Model):
    """One accounted-for action: an export or a bulk change.

    ``actor`` is the user name (or ``cli``), ``action`` e.g.
    ``export.job_errors.csv`` or ``jobs.requeue``, ``filter`` the query that
    chose the rows, ``row_count`` how many rows were exported or changed.
    """

    __tablename__ = "audit_events"
    __table_args__ = (sa.Index("ix_audit_events_occurred_at", "occurred_at"),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    actor: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    action: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    filter: Mapped[Any] = mapped_column(JSONDocument, nullable=True)
    row_count: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)


class ServerSession(db.Model):
    """A browser session, kept server-side (Flask-Session; app/auth/sessions.py).

    The browser holds only a random session id; ``session_key`` is its
    SHA-256, so the table gives no usable cookie. ``data`` is the session
    dict (msgpack). ``expires_at`` (UTC) moves forward on every request, so
    a session unused for ``SESSION_IDLE_MINUTES`` is gone; signing out
    deletes the row.
    """

    __tablename__ = "server_sessions"
    __table_args__ = (sa.Index("ix_server_sessions_expires_at", "expires_at"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    session_key: Mapped[str] = mapped_column(sa.String(64), nullable=False, unique=True)
    data: Mapped[bytes] = mapped_column(sa.LargeBinary, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    #: The user the session's data names (``_user_id``), or NULL: a hint,
    #: not a reference, so that the session's read loads that user in the
    #: same statement (app/auth/sessions.py); Flask-Login's loader still
    #: checks the id, the generation and ``active`` against the data.
    user_id: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
