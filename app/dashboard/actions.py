"""Operator actions from the dashboard: requeue and acknowledge.

Every action is a POST with a CSRF token (Flask-WTF), says what it did in a
flash message, and bulk actions go through a confirmation page. Every action
is written to the audit log (who, when, which job, filter or ids, how many
jobs changed), and clears this process's cached dashboard summaries so the
page the operator returns to counts it.
"""

from __future__ import annotations

import secrets
import time
from datetime import datetime

from flask import abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response

from app.auth.guards import current_actor, requires
from app.dashboard import bp
from app.dashboard.formatting import plural, status_label
from app.dashboard.seen import audit_seen
from app.dashboard.views import FRESH_SUMMARY_UNTIL
from app.errors import InvalidFormError, InvalidQueryError, field_error
from app.models.job_status import FAILURE_STATUSES, JobStatus
from app.models.access import Permission
from app.redirects import safe_redirect_target
from app.request_input import MULTI_VALUED_PARAMETERS
from app.services import bulk_actions, dashboard_stats
from app.services.access import add_audit_event, record_audit_event
from app.services.failure_groups import queries as group_queries
from app.services.processing_jobs import actions, lifecycle
from app.services.processing_jobs.job_filter import JobFilter
from app.services.processing_jobs.errors import FailureChangedError, InvalidTransitionError, JobNotFoundError
from app.services.json_pointer import escape_token
from app.services.processing_jobs.locking import parse_job_id
from app.unit_of_work import WriteTransaction, replayed_write_transaction
from app.web import query as web_query
from app.web.form_fields import form_time, refuse_stray_form_input
from app.timestamps import rfc3339
from app.web.list_heading import href
from app.web.session_merge import TOKEN_DICT_KEYS

#: Most ids one "selected jobs" action takes (a page is at most 200).
MAX_SELECTED = 500
#: Documents a bulk question names for the selected jobs (the rest are counted).
CONFIRM_NAMES_SHOWN = 10
#: Session key of the open questions about selected jobs, by token: the
#: newest :data:`OPEN_QUESTIONS` are kept, merged across tabs writing at
#: once (app/auth/sessions.py).
SELECTED_QUESTIONS_KEY = "selected_questions"
OPEN_QUESTIONS = 8
TOKEN_DICT_KEYS[SELECTED_QUESTIONS_KEY] = OPEN_QUESTIONS


_DONE = {actions.JobAction.REQUEUE: "requeued", actions.JobAction.ACKNOWLEDGE: "acknowledged"}


class ActionForm(FlaskForm):
    """No fields of its own: carries and checks the CSRF token."""


def _back(default: str) -> str:
    """The form's ``next`` when it is a path on this site, else ``default``;
    called before the action, so the redirect cannot fail after it."""
    return safe_redirect_target(request.form.get("next"), default)


def require_csrf() -> None:
    """Check the posted form's CSRF token (Flask-WTF) before any action
    reads the form; aborts with 400, saying to reload the page, when it is
    missing, expired or from another site."""
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400, description="The form expired or did not come from this site; reload the page and try again.")


SCOPES = ("selected", "filter")


def _operation() -> tuple[str, str]:
    """``op`` is ``<action>:<scope>``, e.g. ``requeue:selected`` (one button each)."""
    action, _, scope = request.form.get("op", "").partition(":")
    if action not in actions.JobAction.ALL or scope not in SCOPES:
        raise InvalidFormError(
            "Unknown action.",
            [field_error("/op", "must be <action>:<scope> with action requeue or acknowledge, scope selected or filter")],
        )
    return action, scope


def _form_filter() -> JobFilter:
    """The dashboard filter from the submitted form's hidden filter fields.

    Raises:
        InvalidFormError: a filter field is wrong, each named by its RFC 6901
            pointer into the form (``/status``), as the form's other fields are.
    """
    try:
        return web_query.dashboard_filter(request.form)
    except InvalidQueryError as error:
        # The list's query reader reads them, but here they are fields of a
        # submitted form, not of a query string: say so (400 either way).
        raise InvalidFormError(error.detail, [
            field_error("/" + escape_token(e["field"]) if e["field"] else "", e["detail"]) for e in error.errors
        ]) from None


def _filter_pairs() -> list[tuple[str, str]]:
    return web_query.filter_pairs(request.form.items(multi=True))


@bp.get("/jobs/<job_id>/requeue")
@requires(Permission.ACT_ON_JOBS)
def confirm_requeue_job(job_id: str) -> tuple[str, int]:
    """Ask before requeueing one job: what it clears (the current failure
    leaves the list; its history stays) and a button that does it (a POST
    to :func:`requeue_job`, no script needed). Changes nothing. 409 page
    when the job is not failed."""
    web_query.refuse_unknown_parameters(request.args, ("next",))
    job = lifecycle.get_job(job_id)
    page = url_for("dashboard.show_job", job_id=job.id)
    back = safe_redirect_target(request.args.get("next"), page)
    status = 200 if job.job_status in FAILURE_STATUSES else 409
    if job.error_message is not None:
        # The question quotes the failure's message (a re-check found it unaudited).
        audit_seen("seen.job", {"job_ids": [str(job.id)], "as": "requeue question"})
    return render_template("jobs/requeue_confirm.html", job=job, back=back, requeueable=status == 200), status


@bp.post("/jobs/<job_id>/requeue")
@requires(Permission.ACT_ON_JOBS)
def requeue_job(job_id: str) -> Response:
    """Send one failed job back to ``Pending``; its history is kept."""
    return _act_on_one(actions.JobAction.REQUEUE, job_id, "Requeued the job for document {}.")


@bp.post("/jobs/<job_id>/acknowledge")
@requires(Permission.ACT_ON_JOBS)
def acknowledge_job(job_id: str) -> Response:
    """Acknowledge one failed job: it leaves the default view."""
    return _act_on_one(
        actions.JobAction.ACKNOWLEDGE, job_id, "Acknowledged the failure of document {}."
    )


@bp.post("/jobs/<job_id>/unacknowledge")
@requires(Permission.ACT_ON_JOBS)
def unacknowledge_job(job_id: str) -> Response:
    """Take back the acknowledgement of one failed job (an acknowledge by
    mistake): it shows in the default view again."""
    return _act_on_one(
        actions.JobAction.UNACKNOWLEDGE, job_id,
        "Took back the acknowledgement of document {}: it shows in the list of failures again."
    )


#: What a one-job action that changed nothing says instead (an acknowledge
#: of an acknowledged job, or the undoing of one that is not).
_UNCHANGED = {
    actions.JobAction.ACKNOWLEDGE: "Nothing was changed: the failure of document {} was acknowledged already.",
    actions.JobAction.UNACKNOWLEDGE: "Nothing was changed: the failure of document {} is not acknowledged.",
}


def _act_on_one(action: str, job_id: str, said: str) -> Response:
    """Check the CSRF token, run ``action`` on one job with its audit row in
    the same transaction (none when it changed nothing), flash ``said``
    (formatted with the document id) and go back.

    The form's ``failure_at`` is the ``completed_at`` of the failure the
    page showed: a job that failed again or was requeued since is left
    alone, and the operator is sent back to its page to look again.
    """
    require_csrf()
    refuse_stray_form_input(("failure_at", "next"))
    actor = current_actor()
    back = _back("")  # "": none asked for; the job's page, by its canonical id, below
    shown = _failure_time(request.form.get("failure_at"), "/failure_at")
    def act_and_audit(_transaction: WriteTransaction) -> actions.ActionOutcome:
        outcome = actions.apply_action(action, job_id, actor, shown_failure_at=shown)
        if outcome.changed:
            add_audit_event(actor, f"jobs.{action}", {"scope": "job", "job_ids": [str(outcome.job.id)]}, 1)
        return outcome

    try:
        # Replayed whole when PostgreSQL aborts it as a deadlock's victim
        # (a recorder moving the job's groups at the turn of an hour).
        outcome = replayed_write_transaction(act_and_audit)
        job = outcome.job
    except FailureChangedError as error:
        flash("The job changed after the page you acted on was shown (it failed again, or was requeued): "
              "nothing was done. Here it is as it is now.", "error")
        return redirect(url_for("dashboard.show_job", job_id=error.job_id), 303)
    refresh_summaries()
    if not outcome.changed:
        # Said as it is (a trial's old tab "took back" an acknowledgement already gone).
        said = _UNCHANGED.get(action, said)
    # [before, worker text, after]: plain values (the server-side session
    # stores no Markup); the page escapes each and puts the middle in <bdi>.
    before, _, after = said.partition("{}")
    flash([before, job.document_id, after], "success" if outcome.changed else "info")
    return redirect(back or url_for("dashboard.show_job", job_id=job.id), 303)


def refresh_summaries() -> None:
    """After an action: forget this process's cached summaries, and have this
    operator's summaries computed afresh for ``DASHBOARD_STATS_TTL`` seconds
    in every process (their session)."""
    dashboard_stats.forget_summaries()
    session[FRESH_SUMMARY_UNTIL] = time.time() + float(current_app.config["DASHBOARD_STATS_TTL"])


def _failure_time(value: str | None, pointer: str) -> datetime | None:
    """A form's RFC 3339 time of the failure shown (``None`` when absent).

    Raises:
        InvalidFormError: not an RFC 3339 time, named by ``pointer``.
    """
    return form_time(value, pointer, "The time of the failure shown is not valid.")


def _shown_failures() -> dict[str, datetime]:
    """The bulk question's ``shown`` fields, ``<job id>@<RFC 3339 time>``
    (:func:`app.services.processing_jobs.actions.failures_shown`).

    Raises:
        InvalidFormError: a field of another shape.
    """
    shown: dict[str, datetime] = {}
    for value in request.form.getlist("shown")[:MAX_SELECTED]:
        job_id, at, time_text = value.partition("@")
        moment = _failure_time(time_text, "/shown") if at else None
        if moment is None:
            raise InvalidFormError("A job's failure time is not valid.",
                                   [field_error("/shown", "must be <job id>@<RFC 3339 time>")])
        shown[job_id] = moment
    return shown


def _selected_ids() -> list[str]:
    raw = request.form.getlist("job_id")
    if len(raw) > MAX_SELECTED:
        raise InvalidFormError(
            f"Select at most {MAX_SELECTED} jobs, or act on all jobs matching the filter.",
            [field_error("/job_id", f"at most {MAX_SELECTED}")],
        )
    ids = []
    for value in raw:
        try:
            ids.append(str(parse_job_id(value)))
        except JobNotFoundError:
            raise InvalidFormError("A selected job id is not valid.", [field_error("/job_id", "must be job ids")]) from None
    # Each job once, however often (or in whatever case) a form names it:
    # six copies of one id acted once and said "skipped 5 that changed", and
    # the audit row listed it six times (a trial).
    return list(dict.fromkeys(ids))


@bp.post("/jobs/bulk")
@requires(Permission.ACT_ON_JOBS)
def confirm_bulk_action() -> Response:
    """Ask before an action on the selected jobs or on every job matching
    the filter. Changes no job. Post/redirect/get either way, so Back from
    the answer returns to a page, never to "Confirm Form Resubmission" (a
    trial's find).

    ``filter`` scope: freezes the selection
    (:func:`app.services.bulk_actions.freeze_filter_selection`) and
    redirects (303) to the frozen action's page, which asks with its exact
    count, as the group-wide action does: a reload of the question re-reads
    it and never re-sends the form (which would freeze a second selection).
    ``selected`` scope: the question (the ids, up to :data:`MAX_SELECTED`,
    too long for a URL, and each job's failure as it is now) is kept in the
    session (the :data:`OPEN_QUESTIONS` newest), and
    :func:`show_selected_question` asks it; it
    freezes nothing. With no job ticked, back to the list (its ``next``)
    saying to tick one, not a question about 0 jobs.
    """
    form = _read_bulk_form()
    if isinstance(form, Response):
        return form
    action, filter_pairs, back = form
    ids = _selected_ids()
    if not ids:
        flash("Tick at least one job, or use 'All jobs matching the filter'.", "error")
        return redirect(back, 303)
    # What "yes" refers to: each job's failure as it is now; a job that
    # fails again or is requeued before the answer is skipped. Only the
    # jobs failed now are asked about, so the question's count is what
    # "yes" can act on (a trial, session 27: an id of no job, or of a job
    # requeued meanwhile, was counted).
    shown = {job_id: rfc3339(at) for job_id, at in actions.failures_shown(ids).items()}
    ids = [job_id for job_id in ids if job_id in shown]
    if not ids:
        flash("None of the ticked jobs is failing now (requeued, completed or deleted meanwhile): nothing to do.",
              "error")
        return redirect(back, 303)
    # The question names what was ticked (the first few, one lookup each),
    # so "Acknowledge 2 jobs?" can be checked before saying yes.
    documents: list[str] = []
    for job_id in ids[:CONFIRM_NAMES_SHOWN]:
        try:
            documents.append(lifecycle.get_job(job_id).document_id)
        except JobNotFoundError:
            continue  # gone meanwhile: the action skips it too
    token = secrets.token_urlsafe(9)
    questions = dict(session.get(SELECTED_QUESTIONS_KEY) or {})
    questions[token] = {
        "action": action, "ids": ids, "documents": documents, "back": back,
        "filter_pairs": [list(pair) for pair in filter_pairs],
        "shown": shown,
    }
    session[SELECTED_QUESTIONS_KEY] = dict(list(questions.items())[-OPEN_QUESTIONS:])
    return redirect(url_for("dashboard.show_selected_question", token=token), 303)


@bp.get("/jobs/bulk/selected/<token>")
@requires(Permission.ACT_ON_JOBS)
def show_selected_question(token: str) -> Response | str:
    """The question :func:`confirm_bulk_action` kept for the selected jobs
    (a reload asks it again; it changes nothing). A question the session no
    longer holds (newer ones replaced it, or the session ended) leads back
    to the list, saying so."""
    web_query.refuse_unknown_parameters(request.args, ())
    question = (session.get(SELECTED_QUESTIONS_KEY) or {}).get(token)
    if not isinstance(question, dict):
        flash(f"That question is no longer open (the {OPEN_QUESTIONS} newest are kept, until sign-out): "
              "tick the jobs again.", "error")
        return redirect(url_for("dashboard.list_jobs"), 303)
    return render_template(
        "jobs/bulk_confirm.html",
        action=question["action"],
        scope="selected",
        ids=question["ids"],
        shown={job_id: datetime.fromisoformat(at) for job_id, at in question["shown"].items()},
        documents=question["documents"],
        count=len(question["ids"]),
        filter_pairs=[tuple(pair) for pair in question["filter_pairs"]],
        back=question["back"],
    )


def _read_bulk_form() -> Response | tuple[str, list[tuple[str, str]], str]:
    """The bulk form's action, filter pairs and back link (the list with
    that filter), after its CSRF check; for the ``filter`` scope, the
    redirect to its frozen question instead (:func:`_freeze_filter`)."""
    require_csrf()
    # A misspelt filter field widened the action to every failing job (a trial).
    refuse_stray_form_input((*BULK_FORM_FIELDS, *web_query.FILTER_PARAMETERS),
                            repeatable=("job_id", "shown", *MULTI_VALUED_PARAMETERS))
    action, scope = _operation()
    if scope == "filter":
        return _freeze_filter(action)
    filter_pairs = _filter_pairs()
    return action, filter_pairs, _back(href(url_for("dashboard.list_jobs"), filter_pairs))


#: The bulk forms' own fields (the job list's bar and the question page's),
#: beside the filter's (``FILTER_PARAMETERS``).
BULK_FORM_FIELDS = ("next", "op", "job_id", "shown")


def _freeze_filter(action: str) -> Response:
    """Freeze the jobs the form's filter matches that ``action`` would
    change, with one INSERT ... SELECT (the page then shows the exact count
    the action works through, in batches, writing each job's history link
    in ``bulk_action_jobs``), and redirect (303) to its question."""
    job_filter = _form_filter()
    # 404 for a group that does not exist, as /jobs and the exports answer,
    # not a question about 0 jobs (a trial).
    group_queries.require_group(job_filter.group_id)
    bulk = bulk_actions.freeze_filter_selection(
        action, job_filter, _pairs_to_dict(_filter_pairs()), current_actor()
    )
    return redirect(url_for("dashboard.show_bulk_action", bulk_id=bulk.id), 303)


@bp.post("/jobs/bulk/confirm")
@requires(Permission.ACT_ON_JOBS)
def apply_bulk_action() -> Response:
    """Carry out a confirmed action on the selected jobs, say what it did,
    and audit it.

    The audit row (who, which ids) is committed before the first job
    changes; each job's own transaction then adds one to its count, so the
    audit says exactly how many changes took effect, and the job's history
    finds it by the ids it names.

    No page posts the ``filter`` scope here (its question is the frozen
    action's page); a form that does is not carried out job by job (which
    would leave no history link on the jobs): it freezes the selection and
    redirects (303) to that question, like :func:`confirm_bulk_action`.
    """
    form = _read_bulk_form()
    if isinstance(form, Response):
        return form
    action, filter_pairs, back = form
    actor = current_actor()
    ids = _selected_ids()
    shown = _shown_failures()
    event_id = record_audit_event(actor, f"jobs.{action}", {"scope": "selected", "job_ids": ids}, 0)
    result = actions.apply_to_jobs(action, ids, actor, event_id, shown=shown)
    refresh_summaries()
    message = f"{_DONE[action].capitalize()} {result.changed} {plural('job', result.changed)}"
    if result.skipped:
        message += f"; skipped {result.skipped} that changed after the question or no longer applied"
    flash(message + ".", "success")
    return redirect(back, 303)


def _pairs_to_dict(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for key, value in pairs:
        result.setdefault(key, []).append(value)
    return result


@bp.errorhandler(InvalidTransitionError)
def job_changed_meanwhile(error: InvalidTransitionError) -> Response:
    """A job action the job's status no longer allows (it completed, or
    someone requeued it a moment before): back to the job's page (303)
    saying what it is now, not a bare 409 page in the API's words."""
    done = {JobStatus.PENDING.value: "requeued"}.get(error.target, error.target)
    flash(f"Nothing was changed: the job is {status_label(error.current)} now, so it cannot be {done} "
          "(someone may have acted on it meanwhile). Here it is as it is now.", "error")
    return redirect(url_for("dashboard.show_job", job_id=error.job_id), 303)
