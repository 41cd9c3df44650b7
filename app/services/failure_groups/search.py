"""The header search's part in failure groups: groups found by their title."""

from __future__ import annotations

import sqlalchemy as sa

from app.extensions import db
from app.models.failure_group import FailureGroup
from app.services.failure_groups.fingerprint import GROUPING_VERSION
from app.services.processing_jobs.filter_sql import escape_like

#: Most groups the search lists.
MAX_GROUPS_FOUND = 10


def find_groups_by_title(text: str, *, limit: int = MAX_GROUPS_FOUND) -> list[FailureGroup]:
    """Groups of the current grouping version whose title holds ``text``,
    case-insensitively and literally (``%``, ``_`` and ``\\`` are not
    wildcards), the most recently seen first, at most ``limit``.

    ``lower(title) LIKE lower('%text%')``: on PostgreSQL the trigram index
    of migration 0009 (``lower(title) gin_trgm_ops``) serves it and
    ``lower`` folds Unicode; SQLite scans and folds ASCII letters only, as
    the jobs' search does.
    """
    return list(db.session.scalars(groups_by_title(text, limit=limit)))


def title_matches(text: str) -> sa.ColumnElement[bool]:
    """SQL: the group's title holds ``text`` (see :func:`find_groups_by_title`)."""
    pattern = sa.literal(f"%{escape_like(text)}%", sa.Text)
    return sa.func.lower(FailureGroup.title).like(sa.func.lower(pattern), escape="\\")


def groups_by_title(text: str, *, limit: int = MAX_GROUPS_FOUND) -> sa.Select[tuple[FailureGroup]]:
    """The SELECT of :func:`find_groups_by_title`."""
    return (
        sa.select(FailureGroup)
        .where(FailureGroup.grouping_version == GROUPING_VERSION, title_matches(text))
        .order_by(FailureGroup.last_seen.desc(), FailureGroup.id.desc())
        .limit(limit)
    )
