"""Accounts and the audit log (worker tokens: :mod:`app.services.worker_tokens`).

Passwords: Werkzeug's ``generate_password_hash`` (scrypt, a standard
memory-hard KDF) and ``check_password_hash``.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from werkzeug.security import check_password_hash, generate_password_hash

from app.errors import InvalidFieldsError, ServiceError, field_error
from app.extensions import db
from app.models.access import USERNAME_MAX_LENGTH, AuditEvent, Role, User
from app.models.types import utcnow
from app.services import account_names
from app.services.json_values import clean_json_value, clean_text
from app.unit_of_work import require_write_transaction, write_transaction

#: Shortest password accepted, in characters (NIST SP 800-63B: at least 8).
MIN_PASSWORD_LENGTH = 12
# Checked against when the user does not exist, so a wrong user name costs
# the same time as a wrong password (no user enumeration by timing).
_DUMMY_HASH = generate_password_hash("not-a-real-password-" + secrets.token_hex(8))


class AccountExistsError(ServiceError):
    """A user or token with that name already exists (HTTP 409)."""

    status = 409
    title = "Already exists"
    slug = "already-exists"


class UnknownAccountError(ServiceError):
    """No such user or token (HTTP 404)."""

    status = 404
    title = "Not found"
    slug = "not-found"


def create_user(username: str, password: str, role: Role | str, *, actor: str | None = None) -> User:
    """Create an operator account.

    Args:
        username: 1 to 150 characters, no surrounding whitespace; stored in
            NFC (:func:`app.services.account_names.name_form`) and compared
            so when signing in.
        password: at least :data:`MIN_PASSWORD_LENGTH` characters.
        role: one of :class:`Role`.
        actor: who creates it (``cli`` from ``flask users create``): the
            ``users.create`` audit row is written in the same transaction.
            ``None`` (fixtures, the demo seed) writes none.

    Raises:
        InvalidFieldsError: bad user name, short password, unknown role.
        AccountExistsError: the user name is taken, or differs from a
            taken one only in case or compatibility form
            (:func:`app.services.account_names.look_alike`).
    """
    # In NFC first: the form stored, whose length the column holds.
    username = account_names.name_form(username)
    errors = account_names.name_errors("/username", username, USERNAME_MAX_LENGTH)
    if len(password) < MIN_PASSWORD_LENGTH:
        errors.append(field_error("/password", f"must be at least {MIN_PASSWORD_LENGTH} characters"))
    try:
        role = Role(role)
    except ValueError:
        errors.append(field_error("/role", "must be one of " + ", ".join(r.value for r in Role)))
    if errors:
        raise InvalidFieldsError("The account is not valid.", errors)
    password_hash = generate_password_hash(password)
    with write_transaction():
        if db.session.scalar(account_names.named_query(User, User.username, username)) is not None:
            raise AccountExistsError(f"A user named {shown_name(username)} already exists.")
        # Every name read: accounts are people, tens or hundreds, made rarely.
        if (twin := account_names.look_alike(username, db.session.scalars(sa.select(User.username)))) is not None:
            raise AccountExistsError(
                f"A user named {shown_name(twin)} already exists, and {shown_name(username)} differs from it only "
                "in letter case or character form: the audit log could not tell them apart. Choose another name.")
        user = User(username=username, password_hash=password_hash, role=Role(role).value)
        db.session.add(user)
        if actor is not None:
            add_audit_event(actor, "users.create", {"username": username, "role": Role(role).value})
    return user


def authenticate(username: str, password: str, *, address: str | None = None) -> User | None:
    """Return the active user with this name (exact once in NFC,
    :func:`app.services.account_names.name_form`) and password, else ``None``.

    Takes the same time whether or not the user exists. Every attempt is a
    security event: an ``auth.sign_in`` audit row (the account's name, or
    the user name as typed when none signed in,
    the client ``address``, ``outcome`` ``success`` or ``failure``; never the
    password). A success is audited in the transaction that records
    ``last_login_at``, before the caller starts the session: if the audit
    cannot be written, the exception stops the sign-in.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the audit row could not be written.
    """
    user = db.session.scalar(account_names.named_query(User, User.username, username))
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
    elif not check_password_hash(user.password_hash, password) or not user.active:
        user = None
    facts = {"outcome": "success" if user is not None else "failure", "address": address}
    with write_transaction():
        if user is not None:
            user = db.session.get(User, user.id)
            user.last_login_at = utcnow()
        # A success under the account's own name (a name typed in another
        # Unicode form was another actor on the audit page: a re-check).
        add_audit_event(user.username if user is not None else username, "auth.sign_in", facts)
    return user


def list_users() -> list[User]:
    """Every operator account, by user name (hashes are never shown)."""
    return list(db.session.scalars(sa.select(User).order_by(User.username)))


def _change_user(
    username: str, actor: str, action: str, change: Callable[[User], None],
    done: Callable[[User], bool] = lambda user: False,
) -> tuple[User, bool]:
    """Apply ``change`` to the user named ``username`` and end all their
    sessions (``session_generation`` + 1), audited in the same transaction.
    Returns ``(user, changed)``: when ``done(user)`` says (under the row
    lock) that the change is already made, nothing is written or audited
    and ``changed`` is False."""
    with write_transaction():
        user = db.session.scalar(account_names.named_query(User, User.username, username).with_for_update())
        if user is None:
            raise UnknownAccountError(f"No user is named {shown_name(username)}.")
        if done(user):
            # Enabling an active account must not end its sessions, and a
            # second disable is no new event in the audit log.
            return user, False
        change(user)
        user.session_generation += 1
        add_audit_event(actor, action, {"username": username})
    return user, True


def set_user_active(username: str, active: bool, *, actor: str = "cli") -> tuple[User, bool]:
    """Enable or disable an account; either way every session of it ends.

    A disabled user cannot sign in, and pages opened with an earlier session
    ask for a sign-in at once. Audited (``users.disable`` / ``users.enable``).
    Returns ``(user, changed)``: an account already in that state is left
    as it is (its sessions too) and nothing is audited.

    Raises:
        UnknownAccountError: no user has that name.
    """

    def change(user: User) -> None:
        user.active = active

    return _change_user(
        username, actor, "users.enable" if active else "users.disable", change, lambda user: user.active == active
    )


def set_user_password(username: str, password: str, *, actor: str = "cli") -> User:
    """Set a new password (scrypt hash) and end every session of the account.

    Audited (``users.set_password``; never the password).

    Raises:
        InvalidFieldsError: shorter than :data:`MIN_PASSWORD_LENGTH`.
        UnknownAccountError: no user has that name.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidFieldsError(
            "The password is not valid.",
            [field_error("/password", f"must be at least {MIN_PASSWORD_LENGTH} characters")],
        )
    password_hash = generate_password_hash(password)

    def change(user: User) -> None:
        user.password_hash = password_hash

    return _change_user(username, actor, "users.set_password", change)[0]


def load_user(session_user_id: str) -> User | None:
    """The active user a session names (Flask-Login's ``user_loader``), else ``None``.

    Args:
        session_user_id: ``"<id>.<session_generation>"`` (:meth:`User.get_id`).
            A session kept from before the user's generation was raised
            (disabled, password changed) names an old one and loads nobody.
    """
    user_id, dot, generation = session_user_id.partition(".")
    if not dot or not user_id.isdecimal() or not generation.isdecimal() or len(session_user_id) > 40:
        return None
    user = db.session.get(User, int(user_id))
    if user is None or not user.active or user.session_generation != int(generation):
        return None
    return user


def shown_name(name: str) -> str:
    """An account's or token's name as an error message repeats it: quoted,
    and cut at 100 characters, a stored name's longest (a re-check typed
    5,000 characters and got them all back)."""
    return repr(name[:100]) + ("…" if len(name) > 100 else "")


#: Deepest nesting stored in an audit event's ``filter`` (query pairs and id lists need 3).
AUDIT_FILTER_MAX_DEPTH = 8


def _audit_event(
    actor: str, action: str, filter: Mapping[str, Any] | None, row_count: int | None
) -> AuditEvent:
    # The storage rule of app.services.json_values applies to audit text as to
    # everything else: a NUL in a filter must not make the audit insert fail.
    return AuditEvent(
        id=uuid.uuid4(),  # known before the commit, which expires the object
        actor=clean_text(actor)[:200],
        action=action,
        filter=clean_json_value(dict(filter), max_depth=AUDIT_FILTER_MAX_DEPTH) if filter else None,
        row_count=row_count,
    )


def record_audit_event(
    actor: str, action: str, filter: Mapping[str, Any] | None = None, row_count: int | None = None
) -> uuid.UUID:
    """Append one audit event in its own committed transaction; return its id.

    Called *before* what it records takes effect (an export's first byte, a
    sign-in, a bulk action's first change): if it cannot be written, the
    exception stops the action.

    Args:
        actor: user name (as typed, for sign-ins), worker token name, or ``cli``;
            cut to 200 characters.
        action: what happened, e.g. ``export.job_errors.csv``.
        filter: the query parameters that chose the rows, or other facts of
            the event (JSON object; NUL and lone surrogates become U+FFFD).
        row_count: how many rows were exported or changed; ``None`` while
            unknown (an export still streaming), see :func:`set_audit_row_count`
            and :func:`count_in_audit_event`.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the row could not be written.
    """
    event = _audit_event(actor, action, filter, row_count)
    event_id = event.id  # read before the commit expires the object
    with write_transaction():
        db.session.add(event)
    return event_id


def add_audit_event(
    actor: str, action: str, filter: Mapping[str, Any] | None = None, row_count: int | None = None
) -> AuditEvent:
    """Add one audit event to the open write transaction, without committing.

    For a change that commits together with its audit row (a single-job
    action): called inside that change's ``with write_transaction():``
    block. Arguments as :func:`record_audit_event`.

    Raises:
        RuntimeError: called outside a write transaction.
    """
    require_write_transaction()
    event = _audit_event(actor, action, filter, row_count)
    db.session.add(event)
    db.session.flush()
    return event


def count_in_audit_event(event_id: uuid.UUID) -> None:
    """Add one to an audit event's ``row_count``, in the open transaction.

    A bulk action calls it inside each job's own transaction, so every job
    changed is counted in the audit row exactly when (and only if) its change
    commits.

    Raises:
        RuntimeError: called outside a write transaction.
    """
    require_write_transaction()
    db.session.execute(
        sa.update(AuditEvent)
        .where(AuditEvent.id == event_id)
        .values(row_count=sa.func.coalesce(AuditEvent.row_count, 0) + 1)
    )


#: The most characters of a refused path an ``access.denied`` row keeps: a
#: refused request must not be a way to grow the log (a re-check: a 30 KB path).
MAX_AUDITED_PATH = 300


def record_access_denied(actor: str, method: str, path: str, facts: dict[str, list[str]]) -> uuid.UUID:
    """Write (and commit) the ``access.denied`` row of a refused request by
    ``actor``: its ``method``, its ``path`` (capped at
    :data:`MAX_AUDITED_PATH`; never the query string, which may hold a
    search for a patient's name) and ``facts`` (why: the ``permission``
    missing, or a ``reason``). Returns the row's id.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the row could not be written.
    """
    return record_audit_event(actor, "access.denied", {"method": [method], "path": [path[:MAX_AUDITED_PATH]], **facts})


def note_in_audit_event(event_id: uuid.UUID, facts: dict[str, Any]) -> None:
    """Add ``facts`` to an audit event's ``filter`` once its action has
    ended (own transaction): what it turned out to do, beside what was
    asked (e.g. a bulk action's ``skipped_job_ids``). The row was committed
    before the action took effect; this adds to it, never replaces it."""
    with write_transaction():
        _add_facts(event_id, facts)


def _add_facts(event_id: uuid.UUID, facts: dict[str, Any]) -> None:
    """:func:`note_in_audit_event`'s merge, in the open transaction (the
    row locked, so two notes on one row both land)."""
    event = db.session.get(AuditEvent, event_id, with_for_update=True)
    if event is not None:
        event.filter = {**(event.filter if isinstance(event.filter, dict) else {}), **facts}


#: The fact an export's audit row gets when its file was cut short.
CUT_SHORT_FACT = ("ended", ["before its last row: the download stopped (the client went away or the export failed)"])


def set_audit_row_count(event_id: uuid.UUID, row_count: int, complete: bool = True) -> None:
    """Record how many rows an audited export sent, once it has ended (own
    transaction). ``complete=False`` (the stream stopped before its last
    row) also adds :data:`CUT_SHORT_FACT` to the row's facts, so a partial
    file is not read as the whole (a trial: a download closed after 4 KB
    showed 2,000 rows like a full one)."""
    with write_transaction():
        if not complete:
            _add_facts(event_id, dict([CUT_SHORT_FACT]))
        db.session.execute(sa.update(AuditEvent).where(AuditEvent.id == event_id).values(row_count=row_count))

