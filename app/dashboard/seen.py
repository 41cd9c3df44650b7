"""Auditing who saw a job's error details on the dashboard.

Error details may hold patient data, so a page that shows them (a job's
page and its JSON, a group's page with its sample error item) writes an
audit row naming who saw what (``seen.job``, ``seen.group``) before it is
rendered: if the row cannot be written, the page is not shown. The lists
show short messages, which may name a patient too: ``/jobs`` (and the
search, which lists there) writes ``seen.jobs`` with the jobs whose
message it shows, ``/groups`` ``seen.groups`` with the groups whose
recent message it shows. Exports and actions have their own rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import request

from app.auth.guards import current_actor
from app.services.access import record_audit_event


def audit_seen(action: str, facts: Mapping[str, Any]) -> None:
    """Write the audit row of a page about to show error details:
    ``action`` (``seen.job``, ``seen.group``, ``seen.jobs``,
    ``seen.groups``) by the signed-in user, with ``facts`` (``job_ids``: a
    list of job id strings, as every audit row naming jobs has them, so the
    audit page links them; ``group_id`` or ``group_ids``), in
    its own committed transaction. Nothing for ``HEAD``, which shows
    nothing.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the row could not be written; the
            page is then not shown.
    """
    if request.method != "HEAD":
        record_audit_event(current_actor(), action, facts)
