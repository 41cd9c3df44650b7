"""The group page's actions: resolve, ignore and reopen a failure group, and
freeze the jobs failing on it for a bulk requeue or acknowledge (whose
pages are :mod:`app.dashboard.bulk_views`). The pages themselves are
:mod:`app.dashboard.groups_views`.

Every action is a CSRF-checked POST, needs ``ACT_ON_JOBS`` and is audited by
the service before it takes effect; each answers 303 to the group page (or
the frozen selection's page), so a reload never sends the form again. A
group id in the path is read as the API reads it
(:func:`app.services.failure_groups.queries.parse_group_id`: a 404 saying
what a group id is).
"""

from __future__ import annotations

from datetime import datetime

from flask import flash, redirect, request, session, url_for
from werkzeug.wrappers import Response

from app.auth.guards import current_actor, requires
from app.dashboard import bp
from app.dashboard.group_back import group_back, group_page
from app.dashboard import group_forms
from app.dashboard.actions import require_csrf
from app.errors import InvalidFieldsError, InvalidFormError, field_error
from app.models.access import Permission
from app.services import bulk_actions
from app.services.failure_groups import lifecycle as group_lifecycle
from app.services.failure_groups import queries
from app.services.failure_groups.errors import GroupChangedMeanwhileError, InvalidGroupTransitionError
from app.services.failure_groups.states import is_semver
from app.services.processing_jobs.actions import JobAction
from app.timestamps import format_utc
from app.web.form_fields import refuse_stray_form_input
from app.web.group_query import MAX_TEXT_LENGTH


def _to_group(key: int) -> Response:
    """The group page after a form (303, post/redirect/get), with the list it
    was opened from kept as its ``back`` (:mod:`app.dashboard.group_back`)."""
    return redirect(group_page(key, group_back(request.form.get("back"))), 303)


def _form_error_page(group_id: str, error: Exception) -> Response:
    """Back to the group page (303, post/redirect/get: a reload re-reads the
    page, never re-sends the form) with the form error at its top (which
    field, what to enter) and the fields as typed (kept in the session for
    that one page): not a bare error page that leads away from the group.
    Nothing was changed."""
    if isinstance(error, InvalidFieldsError):
        labels = group_forms.FIELD_LABELS
        # The service's pointers are URI fragments (``#/worker``, RFC 6901 section 6).
        message = "; ".join(f"{labels.get(e.get('pointer', '').removeprefix('#'), 'Form')}: {e['detail']}"
                            for e in error.errors)
    else:
        message = str(error)
    flash(f"Nothing was changed. {message or error}.", "error")
    key = queries.parse_group_id(group_id)
    _keep_typed_fields(key, group_forms.invalid_fields(error))
    return _to_group(key)


def _keep_typed_fields(key: int, invalid: dict[str, str]) -> None:
    # The refused form's fields as typed, for the group page's next view
    # only. Cut to the field's length; a value holding a control or format
    # character is not shown again (the page would mark it, [ZWSP], and a
    # second submit would send the mark as text): the message says why.
    # Only the fields the refused form had: the other forms keep their own
    # defaults (a trial: after a refused Ignore, Resolve's worker, filled in
    # with the usual one, came back empty, and a resolve then named none).
    session[group_forms.REFUSED_FORM_KEY] = {"group": key, "fields": {
        name: group_forms.shown_again(request.form[name])[:MAX_TEXT_LENGTH]
        for name in group_forms.TYPED_FIELDS if name in request.form}, "invalid": invalid}


@bp.post("/groups/<group_id>/resolve")
@requires(Permission.ACT_ON_JOBS)
def resolve_group(group_id: str) -> Response:
    """Resolve the group, optionally ``in_version`` (form field): a SemVer
    2.0.0 version such as ``1.5.0`` (semver.org), as only those order
    regressions (:func:`~app.services.failure_groups.states.is_regression`);
    jobs are not touched. A wrong version leads back to the page (303)
    saying so."""
    require_csrf()
    refuse_stray_form_input(("in_version", "in_worker", "state_at", "back"))
    key = queries.parse_group_id(group_id)
    # A form field, refused on this page whatever its length (not by the
    # query-string reader ``_text``, whose 400 names a query parameter).
    in_version = (request.form.get("in_version") or "").strip() or None
    # Prefilled with the worker failing now: it only counts beside a version.
    in_worker = (request.form.get("in_worker") or "").strip() or None if in_version else None
    try:
        if in_version is not None and not is_semver(in_version):
            raise group_forms.FormError("Resolve in version", "enter a version such as 1.5.0 or 2.0.0-rc.1 "
                                                              "(SemVer, no spaces), or leave it empty")
        # Left out of the form, the worker defaults to the usual one; emptied, it does not.
        group = group_lifecycle.resolve_group(
            key, current_actor(), in_version=in_version, in_worker=in_worker, check_seen=True,
            worker_emptied="in_worker" in request.form and in_worker is None, via="dashboard",
            seen_state_at=group_forms.state_seen(request.form.get("state_at")))
    except (group_forms.FormError, InvalidFieldsError) as error:
        return _form_error_page(group_id, error)
    if in_version and group.resolved_in_worker:
        # [before, worker text, after], as the job actions' flashes: the page isolates the middle.
        flash([f"Resolved group {key} in version {in_version} of ", group.resolved_in_worker, "."], "success")
    elif in_version and group.resolved_in_worker == "":
        flash(f"Resolved group {key} in version {in_version} of the workers that send no name.", "success")
    else:
        # "group 12", not "the group": two tabs' messages may show on one page (a trial).
        flash(f"Resolved group {key}{' in version ' + in_version if in_version else ''}.", "success")
    return _to_group(key)


@bp.post("/groups/<group_id>/ignore")
@requires(Permission.ACT_ON_JOBS)
def ignore_group(group_id: str) -> Response:
    """Ignore the group: ``mode`` ``forever``, ``until_date`` (``until``,
    a date ``YYYY-MM-DD``, UTC midnight, after today) or
    ``until_occurrences`` (``occurrences``, 1 to
    :data:`~app.dashboard.group_forms.MAX_IGNORE_OCCURRENCES`); a field
    filled in with ``mode`` left on ``forever`` chooses its mode
    (:func:`~app.dashboard.group_forms.ignore_mode`). A missing or wrong
    value leads back to the group page (303), naming the field
    ("Ignore until: enter a date"); nothing is changed."""
    require_csrf()
    refuse_stray_form_input(("mode", "until", "occurrences", "state_at", "back"))
    key = queries.parse_group_id(group_id)
    until = occurrences = None
    try:
        mode = group_forms.ignore_mode(request.form)
        if mode == "until_date":
            until = group_forms.until_date(request.form.get("until"))
        elif mode == "until_occurrences":
            occurrences = group_forms.occurrences(request.form.get("occurrences"))
        group_lifecycle.ignore_group(key, current_actor(), until=until, occurrences=occurrences, via="dashboard",
                                     seen_state_at=group_forms.state_seen(request.form.get("state_at")))
    except (group_forms.FormError, InvalidFieldsError) as error:
        return _form_error_page(group_id, error)
    # Said as the timeline says it, so the operator sees which condition was taken.
    condition = (f"until {until.date().isoformat()} (00:00 UTC)" if until is not None
                 else f"until {occurrences} more occurrence{'s' if occurrences != 1 else ''}" if occurrences
                 else "forever")
    flash(f"Ignored group {key} {condition}.", "success")
    return _to_group(key)


@bp.post("/groups/<group_id>/reopen")
@requires(Permission.ACT_ON_JOBS)
def reopen_group(group_id: str) -> Response:
    """Reopen a resolved or ignored group."""
    require_csrf()
    refuse_stray_form_input(("state_at", "back"))
    key = queries.parse_group_id(group_id)
    group_lifecycle.reopen_group(key, current_actor(), via="dashboard",
                                 seen_state_at=group_forms.state_seen(request.form.get("state_at")))
    flash(f"Reopened group {key}.", "success")
    return _to_group(key)


def _action(raw: str | None) -> str:
    if raw not in JobAction.ALL:
        raise InvalidFormError("Unknown action.", [field_error("/op", "must be requeue or acknowledge")])
    return raw


@bp.post("/groups/<group_id>/jobs")
@requires(Permission.ACT_ON_JOBS)
def confirm_group_jobs_action(group_id: str) -> Response:
    """Freeze the jobs currently failing on the group that the action (``op``:
    requeue or acknowledge) would change, then redirect (303) to the frozen
    action's page, which asks for confirmation with their exact count: a
    reload of the question re-reads it, never re-sends the form (which
    would freeze a second selection). Changes no job."""
    require_csrf()
    refuse_stray_form_input(("op",))
    key = queries.parse_group_id(group_id)
    op = _action(request.form.get("op"))
    group = queries.get_group(key).group  # 404 for an unknown group, before freezing anything
    if group.severity in group_forms.WARNING_ONLY:
        # The page offers no such button (its jobs failed on other groups'
        # errors); a crafted form froze "Acknowledge 3 jobs" anyway (a trial).
        raise InvalidFormError(
            f"Group {key} holds {group.severity} items only, which make no job fail: act on the groups of "
            "the errors its jobs failed on. Nothing was done.",
            [field_error("/op", f"is not offered for a group of {group.severity} items")])
    bulk = bulk_actions.freeze_group_selection(op, key, current_actor())
    return redirect(url_for("dashboard.show_bulk_action", bulk_id=bulk.id), 303)


@bp.errorhandler(InvalidGroupTransitionError)
def group_changed_meanwhile(error: InvalidGroupTransitionError) -> Response:
    """A group action the group's state no longer allows (another operator
    resolved it a moment before, say): back to the group page (303) saying
    what it is now, not a bare 409 page that leads away from it. A stale
    page (the state changed after it was shown) says who changed it."""
    if isinstance(error, GroupChangedMeanwhileError):
        at = format_utc(error.changed_at) if isinstance(error.changed_at, datetime) else "a moment ago"
        after = f" at {at}, after this page showed it; it is {error.current} now. " \
                "Here it is as it is now: act again if you still mean to."
        # [before, worker text, after], as the other flashes: the page isolates the name.
        if error.reason and error.changed_by:
            flash([f"Nothing was changed: group {error.group_id} was {error.reason} by ", error.changed_by, after],
                  "error")
        else:
            flash([f"Nothing was changed: group {error.group_id} changed", "", after], "error")
        # "Act again" finds what was typed still there (a trial retyped "5 more").
        _keep_typed_fields(error.group_id, {})
        return _to_group(error.group_id)
    flash(f"Nothing was changed: the group is {error.current} now, so it cannot be {error.action} "
          "(someone may have acted on it meanwhile). Here it is as it is now.", "error")
    return _to_group(error.group_id)

