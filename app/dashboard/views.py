"""Dashboard views over the same services as the API.

Views read the query string, call services and hand plain values to the
templates; the services own every query (``app.services.processing_jobs.pagination``
for the list and pages, ``app.services.dashboard_stats`` for the aggregates,
served apart at ``/jobs/summary`` and framed by ``/jobs``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app, jsonify, redirect, render_template, request, session, url_for
from flask_login import current_user
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from app.auth.guards import CONTENT_SECURITY_POLICY, requires, talisman
from app.dashboard import bp
from app.dashboard.charts import bar_chart
from app.dashboard.formatting import STATUS_LABELS
from app.dashboard.links import QUICK_RANGES, ListLinks, list_heading, list_links
from app.dashboard.links import with_quick_range
from app.dashboard.seen import audit_seen
from app.models import JobStatus, ProcessingJob
from app.models.job_status import FAILURE_STATUSES, TERMINAL_STATUSES
from app.models.access import Permission
from app.models.types import utcnow
from app.redirects import page_endpoint, safe_redirect_target, same_site_referrer
from app.request_input import empty_copies_dropped
from app.services import dashboard_stats
from app.services.failure_groups import group_details, queries
from app.services.failure_groups.search import MAX_GROUPS_FOUND, find_groups_by_title
from app.services.json_values import has_acting_control
from app.services.processing_jobs import lifecycle, pagination
from app.services.processing_jobs.errors import JobNotFoundError
from app.services.processing_jobs.filter_sql import failure_holds_text
from app.services.processing_jobs.history import job_history
from app.services.processing_jobs.job_filter import AcknowledgedFilter, JobFilter, TimeField
from app.services.processing_jobs.locking import parse_job_id
from app.timestamps import format_utc
from app.web.list_heading import href, query_pairs, with_changes
from app.web.query import (
    DEFAULT_DASHBOARD_ACKNOWLEDGED,
    JOB_LIST_PARAMETERS,
    DEFAULT_DASHBOARD_STATUSES,
    dashboard_filter,
    filter_pairs,
    parse_search,
    read_job_list,
    refuse_unknown_parameters,
)
from app.web.serializers import job_to_json

#: Page sizes offered in the filter form (any 1..MAX_PAGE_SIZE is accepted).
PAGE_SIZES = (25, 50, 100, 200)

#: Session key: until when (POSIX seconds, UTC) this operator's summaries
#: are computed afresh, set by their own actions (app/dashboard/actions.py).
#: The session cookie reaches every gunicorn process, where a cache
#: cleared in the acting process alone would not.
FRESH_SUMMARY_UNTIL = "fresh_summary_until"

#: The summary's Content-Security-Policy: the app's, except that pages of
#: this origin may frame it (``/jobs`` does, in an ``<iframe>``).
SUMMARY_CONTENT_SECURITY_POLICY = {**CONTENT_SECURITY_POLICY, "frame-ancestors": "'self'"}


@dataclass(frozen=True)
class JobActions:
    """The buttons one job gets (``templates/jobs/_job_actions.html``): decided
    here, from its status and the operator's role, so templates hold no rule."""

    can_requeue: bool
    can_acknowledge: bool
    can_unacknowledge: bool


def job_actions(job: ProcessingJob) -> JobActions:
    """What the signed-in operator may do to ``job`` now: requeue a failed job,
    and acknowledge its failure once or take that back (role permission
    ``ACT_ON_JOBS``)."""
    may_act = job.job_status in FAILURE_STATUSES and current_user.can(Permission.ACT_ON_JOBS)
    return JobActions(can_requeue=may_act, can_acknowledge=may_act and job.acknowledged_at is None,
                      can_unacknowledge=may_act and job.acknowledged_at is not None)


def current_filter() -> JobFilter:
    """The job filter named by the query string, with the dashboard's defaults.

    Parameters: ``status`` (repeatable; default the failure statuses),
    ``time_field`` (``created``|``completed``), ``from``, ``to`` (RFC 3339),
    ``document_id``, ``job_type``, ``error_code``, ``q``, ``acknowledged``
    (``exclude`` (default)|``include``|``only``); the exports read the same
    (:func:`app.web.query.dashboard_filter`).

    Raises:
        InvalidQueryError: a parameter is wrong (names it).
    """
    return dashboard_filter(request.args)


@bp.get("/jobs")
@requires(Permission.VIEW_JOBS)
def list_jobs() -> str | Response:
    """List jobs newest first (failures by default); the summary of the filter
    (counts, top codes, chart) comes in a frame from :func:`show_jobs_summary`.

    Query: the :func:`current_filter` parameters, ``cursor`` and ``limit``
    (1 to ``MAX_PAGE_SIZE``, default 50); any other name is refused (400). A form submits empty fields; the
    answer is then a redirect to the same query without them, so the
    address bar holds a clean URL to bookmark. The filter form always sends
    an empty ``status`` beside its boxes: when no box is ticked, that is
    ``status=all`` (every status, and the heading says so), never a silent
    fall back to the default statuses.
    """
    pairs = list(request.args.items(multi=True))
    if "range" in request.args:
        # A quick-range button of the form (or a bookmark of one): "from"
        # is now minus the range, the other typed fields kept; over the
        # finish time when only finished jobs are listed (the failures).
        # The statuses alone decide (the typed from/to are about to be
        # replaced: a bad one there must not stop the range).
        statuses = _cleaned([(name, value) for name, value in pairs if name == "status"])
        by_finish_time = _finished_only(dashboard_filter(MultiDict(statuses)))
        return redirect(href(url_for("dashboard.list_jobs"),
                             _cleaned(with_quick_range(pairs, utcnow(), by_finish_time=by_finish_time))))
    if empty_copies_dropped() or any(value == "" for _, value in pairs):
        return redirect(href(url_for("dashboard.list_jobs"), _cleaned(pairs)))
    refuse_unknown_parameters(request.args, JOB_LIST_PARAMETERS)
    job_filter, wanted = read_job_list(request.args, current_filter, maximum=current_app.config["MAX_PAGE_SIZE"])
    page = pagination.list_jobs(job_filter, limit=wanted.limit, cursor=wanted.cursor)
    links = _list_links(pairs, job_filter, next_cursor=page.next_cursor, codes=())
    may_act = current_user.can(Permission.ACT_ON_JOBS)
    # The group named by ?group= (404 when unknown), for its title.
    group = queries.get_group(job_filter.group_id).group if job_filter.group_id is not None else None
    found = find_groups_by_title(job_filter.text, limit=MAX_GROUPS_FOUND + 1) if job_filter.text is not None else []
    # The rows show each failure's message, which may name a patient: who saw
    # which jobs is written before the page is (as the API's lists are; a
    # trial saw "Patient John Doe ..." on /jobs and /search with no row).
    # A search lists jobs whose earlier failure matched (the text itself not
    # shown, but the match says it was there): every row it lists counts. A
    # group's title (the parameterised message of a group without codes) in
    # the heading or the "Groups" found by a search counts too (a re-check).
    shown = [str(job.id) for job in page.jobs if job.error_message is not None or job_filter.text is not None]
    titled = ([group.id] if group is not None else []) + [found_group.id for found_group in found[:MAX_GROUPS_FOUND]]
    if shown or titled:
        audit_seen("seen.jobs", {"job_ids": shown, **({"group_ids": titled} if titled else {})})
    return render_template(
        "jobs/list.html",
        page=page,
        # Only failures can be requeued or acknowledged: only they get a box.
        selectable={job.id for job in page.jobs if may_act and job.job_status in FAILURE_STATUSES},
        can_act=may_act,
        now=utcnow(),
        heading=list_heading(
            url_for("dashboard.list_jobs"), pairs, job_filter,
            default_statuses=DEFAULT_DASHBOARD_STATUSES, default_acknowledged=DEFAULT_DASHBOARD_ACKNOWLEDGED,
            status_words=STATUS_LABELS, time_text=format_utc, group_title=group.title if group else None,
        ),
        job_filter=job_filter,
        limit=wanted.limit,
        page_sizes=PAGE_SIZES,
        links=links,
        # Without the cursor: the summary describes the filter, not the page.
        summary_url=href(url_for("dashboard.show_jobs_summary"), query_pairs(pairs)),
        is_first_page=wanted.cursor is None,
        # An empty list offers the same filter over every status, acknowledged
        # jobs included (it shows no summary to tell where the jobs are).
        every_status_url=href(url_for("dashboard.list_jobs"),
                              with_changes(query_pairs(pairs), {"status": ["all"], "acknowledged": ["include"]}))
        if (job_filter.statuses or job_filter.acknowledged is not AcknowledgedFilter.INCLUDE) and not page.jobs
        else None,
        first_page=href(url_for("dashboard.list_jobs"), query_pairs(pairs)),
        statuses=list(JobStatus),
        status_param="status" in request.args,
        time_fields=list(TimeField),
        acknowledged_choices=list(AcknowledgedFilter),
        filter_fields=filter_pairs(pairs),
        quick_ranges=[(key, label) for key, label, _back in QUICK_RANGES],
        quick_ranges_by_finish_time=_finished_only(job_filter),
        group=group,
        # A search (the header's box) also finds failure groups by title:
        # one more than it lists, to say when there are more.
        found_groups=found[:MAX_GROUPS_FOUND],
        more_groups_found=len(found) > MAX_GROUPS_FOUND,
    )


def _finished_only(job_filter: JobFilter) -> bool:
    """Whether every status the filter lists has a finish time (the failures
    view, ``Completed``): its quick ranges are over the finish time."""
    return bool(job_filter.statuses) and set(job_filter.statuses) <= TERMINAL_STATUSES


def _cleaned(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``pairs`` without empty values; a ``status`` that is only empty values
    (the filter form with no box ticked) becomes ``status=all``."""
    statuses = [v for k, v in pairs if k == "status"]
    cleaned = [(k, v) for k, v in pairs if v != ""]
    if statuses and not any(statuses):
        first = next(i for i, (k, _) in enumerate(pairs) if k == "status")
        cleaned.insert(sum(1 for k, v in pairs[:first] if v != ""), ("status", "all"))
    return cleaned


@bp.get("/search")
@requires(Permission.VIEW_JOBS)
def search() -> Response:
    """The header's search box: ``q`` is a job id (or a prefix of 8 or more
    hex digits), part of a document id, text of a failure (its message,
    and each error item's message, code, pointer, entity type and code), or
    part of a failure group's title (listed above the jobs, as "Groups").

    Redirects to the job when ``q`` is an id prefix that exactly one job has
    (carrying ``back``, the page the box was on, for the job page's back
    link: the site sends no Referer); otherwise to ``/jobs`` filtered by
    ``q`` over every status, acknowledged jobs included (a search looks
    everywhere; the chips there narrow it). An empty ``q`` goes to ``/jobs``.

    Raises:
        InvalidQueryError: ``q`` longer than ``MAX_SEARCH_LENGTH`` (a NUL or
            another control character is refused before any view runs).
    """
    refuse_unknown_parameters(request.args, ("q", "back"))
    text = parse_search(request.args.get("q"), "q")
    if text is None:
        return redirect(url_for("dashboard.list_jobs"))
    job_id = pagination.only_job_with_id_prefix(text)
    if job_id is not None:
        job_page = url_for("dashboard.show_job", job_id=job_id)
        # Only a path of this site is kept (the job page checks it again).
        back = safe_redirect_target(request.args.get("back"), "")
        return redirect(href(job_page, [("back", back)]) if back else job_page)
    pairs = [("q", text), ("status", "all"), ("acknowledged", AcknowledgedFilter.INCLUDE.value)]
    return redirect(href(url_for("dashboard.list_jobs"), pairs))


@bp.get("/jobs/summary")
@requires(Permission.VIEW_JOBS)
@talisman(frame_options="SAMEORIGIN", content_security_policy=SUMMARY_CONTENT_SECURITY_POLICY)
def show_jobs_summary() -> str:
    """The summary of a filter as a small standalone page, framed by ``/jobs``.

    Counts per status, the top error codes and the failures chart, from
    :func:`app.services.dashboard_stats.summarize` (cached for
    ``DASHBOARD_STATS_TTL`` seconds). A request of its own, so the aggregates
    (tens of milliseconds at a million jobs) do not delay the list.

    Query: the :func:`current_filter` parameters; ``cursor`` and ``limit``
    are ignored (``limit`` is kept in the links, which open the list).
    For ``DASHBOARD_STATS_TTL`` seconds after the operator's own action the
    summary is computed afresh (session key :data:`FRESH_SUMMARY_UNTIL`).

    Returns:
        An HTML document without the site's header. Its links carry
        ``target="_top"``: they replace the framing page, not the frame.
        The only dashboard page that may be framed, by this origin only
        (``X-Frame-Options: SAMEORIGIN``, ``frame-ancestors 'self'``).

    Raises:
        InvalidQueryError: a filter parameter is wrong (400, as ``/jobs``).
    """
    refuse_unknown_parameters(request.args, JOB_LIST_PARAMETERS)  # the list's own, which frames it
    pairs = list(request.args.items(multi=True))
    job_filter = current_filter()
    queries.require_group(job_filter.group_id)  # 404 for an unknown group, as /jobs (not a summary of zeros)
    now = utcnow()
    # This operator just acted: count it, whichever process answers.
    refresh = session.get(FRESH_SUMMARY_UNTIL, 0) > now.timestamp()
    ttl = current_app.config["DASHBOARD_STATS_TTL"]
    stats = dashboard_stats.summarize(job_filter, now=now, ttl=ttl, refresh=refresh)
    return render_template(
        "jobs/summary.html",
        job_filter=job_filter,
        stats=stats,
        stats_ttl=f"{ttl:g}" if ttl > 0 else None,  # seconds a count may be reused
        chart=bar_chart(stats.timeline),
        links=_list_links(pairs, job_filter, next_cursor=None, codes=[row.code for row in stats.top_codes.codes]),
        # Where every code is, beyond the top ones: the groups of the filter's
        # job type and time (last seen), in any state.
        groups_url=url_for("dashboard.list_groups", state="all", **{
            name: request.args[name] for name in ("job_type", "from", "to") if request.args.get(name)}),
    )


def _list_links(
    pairs: list[tuple[str, str]], job_filter: JobFilter, *, next_cursor: str | None, codes: Iterable[str]
) -> ListLinks:
    # One builder for the links of the list and of its summary, so both keep the query the same way.
    return list_links(
        url_for("dashboard.list_jobs"),
        url_for("exports.export_job_errors_csv"),
        url_for("exports.export_job_errors_ndjson"),
        url_for("exports.export_entities_csv"),
        pairs,
        next_cursor=next_cursor,
        codes=codes,
        # The entities export reads the completed jobs matching the filter
        # whatever its statuses, and refuses a filter only failed jobs match.
        # A search may match a completed job by a failure it had before a requeue.
        offers_entities=not job_filter.failure_only_parameters(),
    )


@bp.app_template_global()
def job_href(job_id: object, match: str | None = None) -> str:
    """The job page's link from the current page, carrying this page (path
    and query: the list and its filter) as ``back``, so the job page's back
    link returns here; with ``match`` (a search's text), the page opens and
    marks the failures of its history that hold it."""
    here = request.full_path.rstrip("?")
    pairs = [("back", here)] + ([("match", match)] if match else [])
    return href(url_for("dashboard.show_job", job_id=job_id), pairs)


@bp.app_template_global()
def this_page_as_back() -> str:
    """This page's path and query as a ``back`` target, or ``""`` when it
    is not one :func:`~app.redirects.safe_redirect_target` would follow
    (too long, or not printable ASCII: a 404 for a path with an escape
    character must not echo it), or not a GET (the answer to a form's POST
    cannot be gone back to by a link)."""
    if request.method != "GET":
        return ""
    return safe_redirect_target(request.full_path.rstrip("?"), "")


def back_link() -> str:
    """Where the job page's back link goes: its ``back`` parameter, else the
    referring page, when either is a page jobs are opened from (a list, a
    group, a bulk action, the audit log), else the list of failures. Only
    a path on this site is followed
    (:func:`~app.redirects.safe_redirect_target`)."""
    default = url_for("dashboard.list_jobs")
    back = request.args.get("back")
    if back and not _opener_label(urlsplit(back).path):
        # Only a page jobs are opened from, so the link's words fit where it
        # goes (a trial: back=/exports/job-errors.csv was "Back to the list"
        # and, clicked, ran an export).
        return default
    if not back:
        referrer = same_site_referrer(request.referrer, request.host)
        # Only a page a job is opened from: browsers send the sign-in page
        # as the referrer of the page it leads to (Referrer-Policy
        # same-origin), and "back" there would be the sign-in form.
        if referrer and _opener_label(urlsplit(referrer).path):
            back = referrer
    return safe_redirect_target(back, default)


#: The back link's words for each page jobs are opened from, by its endpoint.
_OPENER_LABELS = {
    "dashboard.list_jobs": "Back to the list",
    "dashboard.show_bulk_action": "Back to the list",
    "dashboard.list_groups": "Back to failure groups",
    "dashboard.show_group": "Back to the group",
    "admin.list_audit_events": "Back to the audit log",
}


def _opener_label(path: str) -> str | None:
    """The back link's words for a page jobs are opened from (by its path):
    the job list, the groups list, a group's page, a bulk action's page,
    the audit log; None for any other page (the sign-in form, a job page)."""
    return _OPENER_LABELS.get(page_endpoint(path) or "")


def back_label(target: str) -> str:
    """The back link's words for where it goes (the audit log, a group, or a list of jobs)."""
    return _opener_label(urlsplit(target).path) or "Back to the list"


@bp.get("/jobs/<job_id>")
@requires(Permission.VIEW_JOBS)
def show_job(job_id: str) -> str | Response:
    """Show one job whole: fields, current failure with what to do about
    each code, its history (failures, requeues, acknowledgements and state
    changes, with who and when; oldest first) and extracted entities (404
    page when unknown). ``back``: the page to return to (a path of this site).

    ``job_id`` may also be the short id the list shows (a prefix of 8 or
    more hex digits): one job with it redirects to that job's page (302,
    ``back`` kept), several to the search for it, none is the 404.
    """
    refuse_unknown_parameters(request.args, ("back", "match"))
    try:
        parse_job_id(job_id)
    except JobNotFoundError:  # not a whole id: perhaps the short one
        found = pagination.jobs_with_id_prefix(job_id)
        if len(found) == 1:
            return redirect(href(url_for("dashboard.show_job", job_id=found[0]), query_pairs(request.args.items(multi=True))))
        if found:
            return redirect(url_for("dashboard.search", q=job_id))
    job = lifecycle.get_job(job_id)
    failures = lifecycle.list_failures(job.id)
    entities = lifecycle.list_entities(job.id)
    back = back_link()
    # From a search's "matches an earlier failure": the failures that hold its text.
    match = parse_search(request.args.get("match"), "match")
    matched = {f.id for f in failures if failure_holds_text(f.error_message, f.error_details, match)} if match else set()
    groups = group_details.item_groups([failure.id for failure in failures])
    audit_seen("seen.job", {"job_ids": [str(job.id)], "as": "page"})
    return render_template(
        "jobs/detail.html",
        job=job,
        # Each error item's failure group; the job's own details are its latest failure's.
        item_groups=groups,
        current_groups=groups.get(failures[-1].id, {}) if failures else {},
        # Every job of the document, whatever its status; none for an id
        # stored before control characters were refused in it (no query
        # parameter may hold one: the link would be a 400).
        document_jobs_url=href(url_for("dashboard.list_jobs"),
                               [("document_id", job.document_id), ("status", "all"), ("acknowledged", "include")])
        if not has_acting_control(job.document_id) else None,
        actions=job_actions(job),
        history=job_history(job, failures),
        failure_count=len(failures),
        match=match,
        matched_failures=matched,
        back=back,
        back_label=back_label(back),
        entities=entities,
        # A completed job says so even when the worker found nothing.
        show_entities=bool(entities) or job.job_status is JobStatus.COMPLETED,
    )


@bp.get("/jobs/<job_id>/job.json")
@requires(Permission.VIEW_JOBS)
def show_job_json(job_id: str) -> Response:
    """The job as the API shows it, for signed-in operators (the API itself
    takes worker tokens only)."""
    refuse_unknown_parameters(request.args, ())
    job = lifecycle.get_job(job_id)
    audit_seen("seen.job", {"job_ids": [str(job.id)], "as": "json"})
    return jsonify(job_to_json(job))
