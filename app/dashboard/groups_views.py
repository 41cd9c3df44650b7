"""Failure-group pages of the dashboard: ``/groups`` (the operator's landing
page) and ``/groups/<id>``. Their actions (resolve, ignore, reopen, and
freezing a group's jobs for a bulk action) are
:mod:`app.dashboard.group_action_views`.

Views read the query string, call the services
(:mod:`app.services.failure_groups`, :mod:`app.services.group_samples`) and
hand plain values to the templates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from flask import current_app, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from app.auth.guards import requires
from app.dashboard import bp
from app.dashboard import group_forms
from app.dashboard.group_back import back_target_and_label, group_back, group_page, this_list_as_back
from app.dashboard.charts import bar_chart
from app.dashboard.group_list_query import (
    GROUP_LIST_PARAMETERS, SORT_LABELS, SORTS, STATE_CHOICES, group_list_from_args, group_list_heading,
)
from app.dashboard.links import QUICK_RANGES, with_quick_range
from app.dashboard.seen import audit_seen
from app.errors import InvalidQueryError, parameter_error
from app.models import GroupState
from app.models.access import Permission
from app.models.types import utcnow
from app.request_input import empty_copies_dropped, whole_number
from app.services import group_samples
from app.services.chart_buckets import Bucket, BucketSize, Timeline
from app.services.failure_groups import lifecycle as group_lifecycle
from app.services.failure_groups import daily as daily_rollup, group_details, queries, series
from app.timestamps import format_utc, is_accepted
from app.web.list_heading import href, query_pairs, with_changes
from app.web.query import refuse_unknown_parameters

#: Sparkline windows.
HOURS_24 = 24
DAYS_14 = 14
#: Sample jobs per page of the group page.
SAMPLE_JOBS = 20


@dataclass(frozen=True)
class GroupRow:
    """One row of ``/groups``: the group, its exact counts, its sparklines'
    counts, and its two links (the group's page; its failing jobs)."""

    view: queries.GroupView
    hourly: list[int]
    daily: list[int]
    href: str
    jobs_href: str


def _daily(hourly: list[int], days: int) -> list[int]:
    """Sum hourly counts (oldest first, ending with the current hour) into ``days`` days."""
    padded = [0] * max(0, days * 24 - len(hourly)) + hourly[-days * 24:]
    return [sum(padded[d * 24:(d + 1) * 24]) for d in range(days)]


def _group_id(raw: str) -> int:
    """The group id in a page's path, read as the API reads it (a 404
    otherwise, saying what a group id is): "/groups/%201" and 5,000 zeros
    before a 1 opened group 1 on the page and were a 404 in the API (a trial)."""
    return queries.parse_group_id(raw)


@bp.get("/groups")
@requires(Permission.VIEW_JOBS)
def list_groups() -> str | Response:
    """The failure groups: one row each with exact counts, 24 h and 14 d
    sparklines and worker versions; filters, sort and keyset pages."""
    pairs = list(request.args.items(multi=True))
    if "range" in request.args:
        # A quick-range button (as /jobs has; a trial found only full RFC
        # 3339 times): "last seen from" now minus the range, the other typed
        # fields kept, a bookmark of "the last 7 days" re-read each time.
        return redirect(href(url_for("dashboard.list_groups"),
                             [(k, v) for k, v in with_quick_range(pairs, utcnow()) if v != ""]))
    if empty_copies_dropped() or any(value == "" for _, value in pairs):
        return redirect(href(url_for("dashboard.list_groups"), [(k, v) for k, v in pairs if v != ""]))
    refuse_unknown_parameters(request.args, GROUP_LIST_PARAMETERS)
    group_filter, sort, wanted = group_list_from_args(request.args, maximum=current_app.config["MAX_PAGE_SIZE"])
    now = utcnow()
    # The page only reads: the closed days are rolled up by the worker's
    # periodic task or `flask groups roll-up-days`, and the days after the
    # mark are summed from the hours, so the sparklines are exact whatever
    # the roll-up's lag (app/services/failure_groups/daily.py).
    through = daily_rollup.rolled_through()
    page = queries.list_groups(group_filter, sort=sort, limit=wanted.limit, cursor=wanted.cursor)
    ids = [view.group.id for view in page.items]
    # Each row shows a recent message of its group ("e.g. ..."), which may
    # name a patient: audited before the page is, as the group page and the
    # API's list are (a trial).
    shown = [view.group.id for view in page.items if view.group.sample_message]
    if shown:
        audit_seen("seen.groups", {"group_ids": shown})
    sparklines = series.sparkline_series(ids, now, days=DAYS_14, through=through)
    # Each row's two links from one built URL each: url_for per row was a
    # sixth of the page's render (docs/benchmarks.md, "Failure-group pages").
    group_base = url_for("dashboard.show_group", group_id="0")[:-1]
    back = href("", this_list_as_back())  # "?back=..." or ""
    # "Failing now" counts acknowledged jobs too: the list they open must
    # show them (its default hides acknowledged jobs).
    jobs_base = url_for("dashboard.list_jobs", acknowledged="include", group="0")[:-1]
    rows = [
        GroupRow(view, *sparklines[view.group.id], f"{group_base}{view.group.id}{back}",
                 f"{jobs_base}{view.group.id}")
        for view in page.items
    ]
    kept = query_pairs(pairs)
    selected_states = list(dict.fromkeys(
        w.strip() for v in request.args.getlist("state") for w in v.split(",") if w.strip())) or ["unresolved"]
    # A resolved group may still have jobs failing on it (not requeued since
    # the resolve, or failing again on workers older than the fixed
    # version, which do not reopen it), so a list that leaves resolved
    # groups out says how many there are and links to them.
    hidden = None
    if GroupState.RESOLVED.value not in group_filter.states and group_filter.states:
        hidden = queries.resolved_still_failing(group_filter, now=now)
    return render_template(
        "groups/list.html",
        still_failing=hidden if hidden and hidden.groups else None,
        # An empty list in some states only: the way to every state (a trial read "none" as "none at all").
        every_state_href=href(url_for("dashboard.list_groups"), with_changes(kept, {"state": ["all"]}))
        if not rows and (group_filter.states or group_filter.substates) else None,
        still_failing_href=href(url_for("dashboard.list_groups"),
                                with_changes(kept, {"state": ["resolved"], "failing": ["1"]})),
        rows=rows,
        # "Match the whole code" only when the code is what excludes everything (a trial got it
        # under a worker-version filter that did).
        code_unknown=bool(group_filter.code and not rows
                          and not queries.code_is_known(group_filter.code, group_filter.grouping_version)),
        quick_ranges=[(key, label) for key, label, _back in QUICK_RANGES],
        now=now,
        group_filter=group_filter,
        selected_states=selected_states,
        heading=group_list_heading(url_for("dashboard.list_groups"), kept, group_filter, selected_states,
                                   time_text=format_utc),
        state_choices=STATE_CHOICES + ("all",),
        sort=sort,
        sorts=[(s, SORT_LABELS[s], href(url_for("dashboard.list_groups"), with_changes(kept, {"sort": [s]})))
               for s in SORTS],
        next_page=href(url_for("dashboard.list_groups"), kept + [("cursor", page.next_cursor)])
        if page.next_cursor else None,
        first_page=href(url_for("dashboard.list_groups"), kept) if request.args.get("cursor") else None,
        args=request.args,
    )


def _timeline(hourly: list[int], now: datetime) -> Timeline:
    """Daily buckets (UTC days, the last one today) of hourly counts that end with the current hour."""
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    first_day = (this_hour - timedelta(days=DAYS_14 - 1)).replace(hour=0)
    counts = [0] * DAYS_14
    for back, count in enumerate(reversed(hourly)):
        day = ((this_hour - timedelta(hours=back)).replace(hour=0) - first_day).days
        if 0 <= day < DAYS_14:
            counts[day] += count
    buckets = [Bucket(first_day + timedelta(days=d), c) for d, c in enumerate(counts)]
    return Timeline(size=BucketSize.DAY, start=first_day, end=first_day + timedelta(days=DAYS_14), buckets=buckets)


@bp.get("/groups/<group_id>")
@requires(Permission.VIEW_JOBS)
def show_group(group_id: str) -> str:
    """One group: summary, counts over 14 days, distribution by job type and
    worker version, the timeline of its states and the actions on its jobs,
    sample jobs (keyset), a sample error item and the actions, with the fields
    of a refused action form as typed (kept by :mod:`app.dashboard.group_action_views`)."""
    refuse_unknown_parameters(request.args, ("cursor", "back"))
    key = _group_id(group_id)
    back = group_back(request.args.get("back"))
    # Only when there is one: a pop marks the session changed (a new cookie on every view).
    refused = session.pop(group_forms.REFUSED_FORM_KEY) if group_forms.REFUSED_FORM_KEY in session else None
    typed = refused.get("fields") if isinstance(refused, dict) and refused.get("group") == key else None
    invalid = refused.get("invalid") or {} if typed is not None else {}
    view = queries.get_group(key)
    now = utcnow()
    hourly = series.hourly_occurrences([key], now - timedelta(days=DAYS_14) + timedelta(hours=1), now).get(key, [])
    samples, after = group_details.sample_occurrences(
        key, limit=SAMPLE_JOBS, before=_sample_cursor(request.args.get("cursor"))
    )
    next_cursor = f"{after[0].isoformat()}|{after[1]}" if after else None
    sample = group_samples.sample_failure(view.group)
    # The page shows a sample failure's error items: who saw it is audited.
    audit_seen("seen.group", {"group_id": key, "job_ids": [str(sample.failure.job_id)] if sample else []})
    return render_template(
        "groups/detail.html",
        view=view,
        group=view.group,
        now=now,
        hourly=hourly[-HOURS_24:],
        daily=_daily(hourly, DAYS_14),
        chart=bar_chart(_timeline(hourly, now), noun="occurrence"),
        distribution=group_details.group_distribution(key),
        events=group_details.group_timeline(key),
        recent_workers=group_lifecycle.recent_worker_names(key),
        bulk_actions=group_details.group_bulk_actions(key),
        samples=samples,
        documents=group_samples.document_ids(occurrence.job_id for occurrence in samples),
        # To the table, not the page's top (a trial scrolled back down each time).
        next_samples=group_page(key, back, ("cursor", next_cursor)) + "#samples" if next_cursor else None,
        first_samples=group_page(key, back) + "#samples" if request.args.get("cursor") else None,
        back=back,
        back_link=back_target_and_label(back),
        sample=sample,
        jobs_url=href(url_for("dashboard.list_jobs"), [("acknowledged", "include"), ("group", str(key))]),
        can_act=_can_act(),
        # "Acknowledge all" only when it would acknowledge something (a trial got "Acknowledge 0 jobs?").
        unacknowledged=group_details.unacknowledged_current_job_count(key) if view.current_job_count else 0,
        today=now.date().isoformat(),
        typed=typed or {},
        invalid=invalid,
        warning_only=view.group.severity in group_forms.WARNING_ONLY,
    )


def _sample_cursor(raw: str | None) -> tuple[datetime, int] | None:
    """The sample jobs' keyset position, ``<RFC 3339>|<occurrence id>``."""
    if not raw:
        return None
    at, _, last_id = raw.partition("|")
    try:
        moment = datetime.fromisoformat(at)
        occurrence_id = whole_number(last_id, 2**63 - 1)  # a BIGINT id
        if moment.tzinfo is None or occurrence_id is None:
            raise ValueError(raw)
        # In UTC, as stored; an offset that carries the year past 9999 or
        # before 1 raises OverflowError here, not a 500 in the query (a trial).
        moment = moment.astimezone(timezone.utc)
        if not is_accepted(moment):
            raise ValueError(raw)
    except (ValueError, OverflowError):
        raise InvalidQueryError("The cursor is not valid; start again from the first page.",
                                [parameter_error("cursor", "must be a cursor this page gave out")]) from None
    return moment, occurrence_id


def _can_act() -> bool:
    from flask_login import current_user

    return current_user.can(Permission.ACT_ON_JOBS)
