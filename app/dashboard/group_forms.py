"""The group page's action forms, read as the operator filled them in.

Their fields' names as the page shows them (for form errors that say which
field was wrong and what to enter) and the ignore form's rules: a field
typed in is never dropped silently. Views in :mod:`app.dashboard.group_action_views`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from app.models.types import utcnow
from app.request_input import whole_number
from app.timestamps import LATEST_ACCEPTED, is_accepted, is_year_zero
from app.web.form_fields import form_time
from app.web.query_time import date_time_fault
from app.services.failure_groups import lifecycle as group_lifecycle
from app.services.json_values import has_unseen_character

#: The group page's form fields: the service's pointer (RFC 6901) to the
#: field's name as the operator reads it, for form errors, and the form
#: field it names (the page marks it invalid, with the error beside it).
FORM_FIELDS = {
    "/in_version": ("Resolve in version", "in_version"),
    "/worker": ("Resolve in version … of worker", "in_worker"),
    "/until": ("Ignore until", "until"),
    "/occurrences": ("Ignore until … more occurrences", "occurrences"),
    "/mode": ("Ignore", "mode"),
    "": ("Ignore", "mode"),
}
#: The fields' names by pointer, and the form field each name stands for.
FIELD_LABELS = {pointer: label for pointer, (label, _) in FORM_FIELDS.items()}
LABEL_FIELDS = dict(FORM_FIELDS.values())

#: Severities that make no job fail: a group of only these offers no
#: action on "its" jobs (the group page's ``warning_only``).
WARNING_ONLY = ("warning", "information")

#: Session key of a refused action form's fields, shown once on its group's page.
REFUSED_FORM_KEY = "refused_group_form"

#: Most occurrences an "ignore until N more" may wait for (the service's limit).
MAX_IGNORE_OCCURRENCES = group_lifecycle.MAX_IGNORE_OCCURRENCES


#: The group page's form fields shown again, as typed, when the form is refused.
TYPED_FIELDS = ("in_version", "in_worker", "mode", "until", "occurrences")


def shown_again(typed: str) -> str:
    """A refused form's field as the page fills it in again: as typed, or
    ``""`` when it holds a control, format or surrogate character (Unicode
    Cc, Cf, Cs), which the page would mark as text (``[ZWSP]``)."""
    return "" if has_unseen_character(typed) else typed


class FormError(Exception):
    """A field of a group page's form is wrong: ``label`` names it as the page does
    ("Ignore until: enter a date")."""

    def __init__(self, label: str, message: str) -> None:
        super().__init__(f"{label}: {message}")
        self.label, self.message = label, message


def invalid_fields(error: Exception) -> dict[str, str]:
    """``{field name: what to enter}`` for a refused group form's error
    (:class:`FormError`, or the service's ``InvalidFieldsError`` with
    pointers as URI fragments, RFC 6901 section 6); ``{}`` when it names no
    field of the page. The page ties each message to its field
    (``aria-invalid``, ``aria-describedby``, WCAG 3.3.1)."""
    if isinstance(error, FormError):
        field = LABEL_FIELDS.get(error.label)
        return {field: error.message} if field else {}
    found: dict[str, str] = {}
    for item in getattr(error, "errors", []):
        field = LABEL_FIELDS.get(FIELD_LABELS.get(str(item.get("pointer", "")).removeprefix("#"), ""))
        if field and field not in found:
            found[field] = str(item.get("detail", ""))
    return found


#: The ignore form's modes and the field each one reads (forever reads none).
IGNORE_FIELDS = {"until_date": ("until", FIELD_LABELS["/until"]),
                  "until_occurrences": ("occurrences", FIELD_LABELS["/occurrences"])}


def ignore_mode(form: Mapping[str, str]) -> str:
    """The ignore form's mode, from the radio and the fields filled in. A
    field typed in is never dropped: with the radio left on "forever" (its
    default) a filled date or count chooses its own mode; a field filled in
    for a mode not chosen, or both, is refused, naming the field."""
    # The page's radio always sends one (forever is checked at first): a
    # form without it was not sent from the page, and is not taken as forever.
    mode = form.get("mode")
    if mode != "forever" and mode not in IGNORE_FIELDS:
        raise FormError("Ignore", "choose forever, until a date, or until a number of occurrences")
    filled = [name for name, (field, _) in IGNORE_FIELDS.items() if (form.get(field) or "").strip()]
    if mode == "forever" and len(filled) == 1:
        return filled[0]
    if mode == "forever" and filled:
        raise FormError("Ignore", "fill in either the date or the number of occurrences, not both, "
                                   "or empty both to ignore forever")
    for other in filled:
        if other != mode:
            raise FormError(IGNORE_FIELDS[other][1], "empty it, or choose that option, "
                                                       "so the group is ignored as you mean")
    return mode


def until_date(raw: str | None) -> datetime:
    """The ignore form's ``until``: a date ``YYYY-MM-DD`` after today, as UTC midnight.

    Raises:
        FormError: empty, not YYYY-MM-DD, not after today, or after
            :data:`~app.timestamps.LATEST_ACCEPTED` (the API's bound).
    """
    text = (raw or "").strip()
    if not text:
        raise FormError("Ignore until", "enter a date")
    if len(text) == 10 and is_year_zero(text):
        # Well-formed, and long past, like 0001.
        raise FormError("Ignore until", "enter a date after today")
    try:
        if len(text) != 10:
            raise ValueError(text)
        until = datetime.fromisoformat(text + "T00:00:00+00:00")
    except ValueError:
        # 2026-02-30 is well-formed: say why it is no date ("February 2026 has 28 days").
        fault = date_time_fault(text + "T00:00:00Z") if len(text) == 10 else None
        raise FormError("Ignore until", fault or "enter a date as YYYY-MM-DD, such as 2026-12-31") from None
    if until <= utcnow():
        raise FormError("Ignore until", "enter a date after today")
    if not is_accepted(until):  # after today, so past the range's end
        raise FormError("Ignore until", f"enter a date up to {LATEST_ACCEPTED.date().isoformat()}")
    return until


def occurrences(raw: str | None) -> int:
    """The ignore form's ``occurrences``: a whole number, 1 to :data:`MAX_IGNORE_OCCURRENCES`.

    Raises:
        FormError: empty or not such a number.
    """
    text = (raw or "").strip()
    if not text:
        raise FormError("Ignore until … more occurrences", "enter how many more occurrences")
    count = whole_number(text, MAX_IGNORE_OCCURRENCES)
    if not count:
        raise FormError("Ignore until … more occurrences",
                         f"enter a whole number from 1 to {MAX_IGNORE_OCCURRENCES:,}")
    return count


def state_seen(raw: str | None) -> datetime | None:
    """The lifecycle forms' hidden ``state_at``: the group's
    ``state_changed_at`` as the page showed it (RFC 3339 UTC, to the
    microsecond), for the service to refuse the action if the state changed
    since (:class:`~app.services.failure_groups.errors.GroupChangedMeanwhileError`).
    ``None`` when absent: a form not sent from the page is not checked, as
    a job action without ``failure_at`` is not.

    Raises:
        InvalidFormError: not an RFC 3339 time (400, pointer ``/state_at``).
    """
    return form_time(raw, "/state_at", "The time of the group's state shown is not valid.")
