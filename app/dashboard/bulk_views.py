"""Bulk-action pages of the dashboard: ``/bulk-actions/<id>`` (the frozen
selection's question, then its progress) and its ``run`` POST.

A bulk action is frozen by the group page (``/groups/<id>/jobs``) or by
the job list's selection bar (``/jobs/bulk/confirm``); these views confirm
it, start it and follow it. Every POST is CSRF-checked, needs
``ACT_ON_JOBS`` and is audited by the service before the first change.
"""

from __future__ import annotations

from datetime import timedelta

from flask import abort, current_app, flash, redirect, render_template, request, session, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import MethodNotAllowed
from werkzeug.wrappers import Response

from app.auth.guards import current_actor, requires
from app.dashboard import bp
from app.dashboard.actions import refresh_summaries
from app.dashboard.formatting import STATUS_LABELS, plural
from app.dashboard.actions import require_csrf
from app.dashboard.links import list_heading
from app.dashboard.seen import audit_seen
from app.errors import InvalidQueryError
from app.models.access import Permission
from app.models.types import utcnow
from app.redirects import not_a_page
from app.services import bulk_actions, bulk_queue
from app.services.failure_groups import group_details, queries
from app.services.failure_groups.errors import GroupNotFoundError
from app.services.processing_jobs.actions import JobAction
from app.timestamps import format_utc
from app.unit_of_work import write_transaction
from app.web.form_fields import refuse_stray_form_input
from app.web.list_heading import ListHeading, href, query_pairs
from app.web.query import (
    DEFAULT_DASHBOARD_ACKNOWLEDGED,
    DEFAULT_DASHBOARD_STATUSES,
    dashboard_filter,
    refuse_unknown_parameters,
)

#: Seconds one request spends on a bulk action before it pauses (under the
#: app server's timeout; ``BULK_ACTION_REQUEST_SECONDS`` overrides it).
REQUEST_SECONDS = 20.0
#: Seconds between reloads of a bulk action's progress page while a worker runs it.
BULK_REFRESH_SECONDS = 3
#: A question older than this says so, and offers a fresh count: a trial
#: left one open while others acted and then confirmed "44 jobs" for 35.
QUESTION_FRESH_FOR = timedelta(minutes=10)


def _bulk(bulk_id: str):
    try:
        bulk = bulk_actions.get(bulk_id)
    except bulk_actions.BulkActionNotFoundError:
        abort(404)
    return bulk


@bp.post("/bulk-actions/<bulk_id>/run")
@requires(Permission.ACT_ON_JOBS)
def run_bulk_action(bulk_id: str) -> Response:
    """Start (or continue) a confirmed bulk action, then show its progress.

    With ``BULK_ACTION_RUNNER = "procrastinate"`` the claim, the audit row
    and one queued task commit together and a worker does the batches; with
    ``"inline"`` this request runs batches for at most
    ``BULK_ACTION_REQUEST_SECONDS``. A second submit of the same
    confirmation finds it running or done and changes nothing. The audit
    row (the group or filter and the count selected) is committed before
    the first change; its ``row_count`` grows with each batch.
    """
    require_csrf()
    refuse_stray_form_input(())
    bulk = _bulk(bulk_id)
    audit = {"scope": bulk.scope}
    if bulk.group_id is not None:
        # The id only: a group's title may be made from a worker's message,
        # which may hold patient text, and the audit log outlives the purge.
        audit["group_id"] = bulk.group_id
    if bulk.query:
        audit["query"] = bulk.query
    background = current_app.config["BULK_ACTION_RUNNER"] == "procrastinate"
    with write_transaction():
        started = bulk_actions.start(bulk.id, current_actor(), audit)
        if started and background:
            bulk_queue.defer_run(bulk.id)
    if not started:
        flash("This action was already carried out; nothing was done twice.", "info")
        return redirect(url_for("dashboard.show_bulk_action", bulk_id=bulk.id), 303)
    if background:
        flash("Started: the jobs are worked through in the background; this page follows the progress.", "success")
        return redirect(url_for("dashboard.show_bulk_action", bulk_id=bulk.id), 303)
    try:
        done = bulk_actions.run(
            bulk.id,
            current_app.config.get("BULK_ACTION_BATCH_SIZE", bulk_actions.BATCH_SIZE),
            budget_seconds=current_app.config.get("BULK_ACTION_REQUEST_SECONDS", REQUEST_SECONDS),
        )
    finally:
        refresh_summaries()
    verb = "Requeued" if done.action == JobAction.REQUEUE else "Acknowledged"
    message = f"{verb} {done.changed:,} {plural('job', done.changed)}"
    if done.skipped:
        message += f"; skipped {done.skipped:,} that no longer applied"
    if done.state == "paused":
        message += f" so far: {done.next_position:,} of {done.total:,} done; continue below"
    flash(message + ".", "success")
    return redirect(url_for("dashboard.show_bulk_action", bulk_id=bulk.id), 303)


@bp.get("/bulk-actions/<bulk_id>")
@requires(Permission.ACT_ON_JOBS)
def show_bulk_action(bulk_id: str) -> str:
    """A bulk action: while ``pending`` (frozen, not yet confirmed), the
    question ("Requeue 11 jobs?") with its Yes button; afterwards its
    progress: selected, done, changed, skipped, state."""
    refuse_unknown_parameters(request.args, ())
    bulk = _bulk(bulk_id)
    group = queries.get_group(bulk.group_id).group if bulk.group_id is not None else None
    heading, titled = _filter_heading(bulk)
    # A trial requeued a group's one job and three other groups emptied too: the question says so, and names them.
    others = group_details.selection_in_other_groups(bulk.id, group.id) if (
        group is not None and bulk.state == "pending") else None
    shown = [group.id if group is not None else titled, *(named[0] for named in (others.named if others else ()))]
    _audit_group_titles(bulk, [group_id for group_id in shown if group_id is not None])
    if bulk.state == "pending":
        now = utcnow()
        return render_template("groups/bulk_confirm.html", bulk=bulk, group=group, back=_bulk_origin(bulk),
                               heading=heading, now=now, stale=now - bulk.created_at > QUESTION_FRESH_FOR,
                               others=others)
    # While a worker runs it, the page reloads itself (no script: the CSP
    # allows none) until the action is done or stopped.
    refresh = BULK_REFRESH_SECONDS if bulk.state == "running" and (
        current_app.config["BULK_ACTION_RUNNER"] == "procrastinate") else None
    return render_template("groups/bulk_progress.html", bulk=bulk, group=group, refresh_seconds=refresh,
                           back=_bulk_origin(bulk), heading=heading)


def _audit_group_titles(bulk, group_ids: list[int]) -> None:
    """A ``seen.groups`` row (``"as": "bulk action"``) before a bulk action's
    page shows the titles of ``group_ids`` (its group, and on the question
    the other groups its jobs fail on; a message group's title is a
    worker's message, parameterised: it may name a patient), as ``/groups``
    and the job list's heading write one (a trial found none here). Once
    per bulk action and set of groups in a sign-in session: the progress
    page reloads itself every few seconds while a worker runs it."""
    if not group_ids or request.method == "HEAD":  # HEAD shows nothing and writes no row
        return
    # Per user: a sign-in keeps the session's data under a new id, and the
    # next user of a shared screen saw the title unaudited (a re-check).
    seen = f"{current_actor()} {bulk.id.hex} {','.join(map(str, group_ids))}"
    audited = session.get(_TITLES_AUDITED, [])
    if seen in audited:
        return
    audit_seen("seen.groups", {"group_ids": group_ids, "as": "bulk action"})
    session[_TITLES_AUDITED] = [*audited, seen][-_TITLES_AUDITED_KEPT:]


#: Session key: the bulk actions whose group titles a user of this session
#: was audited seeing ("<actor> <hex id> <group ids>"), the newest :data:`_TITLES_AUDITED_KEPT`.
_TITLES_AUDITED = "bulk_titles_seen"
_TITLES_AUDITED_KEPT = 20


def _frozen_pairs(bulk) -> list[tuple[str, str]]:
    """The filter a bulk action was frozen from (its ``query``, ``{name: [values]}``) as query pairs."""
    query = bulk.query if isinstance(bulk.query, dict) else {}
    return query_pairs([(str(k), str(v)) for k, values in query.items()
                        for v in (values if isinstance(values, list) else [values])])


def _filter_heading(bulk) -> tuple[ListHeading | None, int | None]:
    """What a filter-wide bulk action acts on, in the /jobs heading's words
    (``Failed jobs`` and its chips, :func:`~app.dashboard.links.list_heading`),
    so the question and the progress page say which filter; ``None`` for a
    group's action, or a frozen filter this version no longer reads. With
    it, the id of the group whose title a chip shows, or ``None``."""
    if bulk.group_id is not None:
        return None, None
    pairs = _frozen_pairs(bulk)
    try:
        job_filter = dashboard_filter(MultiDict(pairs))
    except InvalidQueryError:
        return None, None
    group_title = None
    if job_filter.group_id is not None:
        try:
            group_title = queries.get_group(job_filter.group_id).group.title
        except GroupNotFoundError:
            pass  # deleted since: the chip says its id
    return list_heading(url_for("dashboard.list_jobs"), pairs, job_filter,
                        default_statuses=DEFAULT_DASHBOARD_STATUSES,
                        default_acknowledged=DEFAULT_DASHBOARD_ACKNOWLEDGED,
                        status_words=STATUS_LABELS, time_text=format_utc, group_title=group_title), (
        job_filter.group_id if group_title is not None else None)


def _bulk_origin(bulk) -> str:
    """Where a bulk action came from, for its page's back link: the group's
    page, or the job list with the filter it was taken from (its frozen
    query, ``{name: [values]}``), the list as it is now."""
    if bulk.group_id is not None:
        return url_for("dashboard.show_group", group_id=bulk.group_id)
    return href(url_for("dashboard.list_jobs"), _frozen_pairs(bulk))



@bp.get("/jobs/bulk")
@not_a_page  # the function registered is the one marked
@requires(Permission.VIEW_JOBS)
def bulk_form_address() -> Response:
    """``GET /jobs/bulk`` (a copied address, a bookmark): the 405 page with
    ``Allow: POST`` (RFC 9110 section 15.5.6), as every address that only
    takes a form answers. Without this rule the job page's
    ``/jobs/<job_id>`` took it and said no job "bulk" exists.

    Raises:
        MethodNotAllowed: always.
    """
    raise MethodNotAllowed(
        valid_methods=["POST"],
        description="This address takes the job list's action form: tick jobs on the job list and press "
                    "Requeue or Acknowledge there, or “Requeue all…” or “Acknowledge all…” for every job "
                    "matching its filter.",
    )
