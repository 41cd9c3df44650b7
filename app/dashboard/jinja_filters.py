"""Jinja filters for the dashboard; templates format nothing themselves.

Every filter returns plain text or plain values: Jinja's autoescaping escapes
them when they are rendered, so worker-supplied text never becomes markup.
The exceptions, :func:`~app.dashboard.sparkline.sparkline` (SVG it built
itself from numbers, with its one text part escaped) and
:func:`~app.dashboard.failure_details.break_after` (escaped text with
``<wbr>`` added), :func:`~app.dashboard.failure_details.break_long_words`
(escaped text, an over-long word in a span that may break anywhere) and
:func:`~app.dashboard.formatting.show_bidi_controls` (escaped text, each
directional formatting character as a marked span), return markup they built
from escaped text. ``bidi_shown`` goes last in a chain: the others call
``str()`` on what they are given and would escape its markup again.

The filters live with what they format: times, numbers and statuses in
:mod:`app.dashboard.formatting`, a failure's details in
:mod:`app.dashboard.failure_details`, the sparkline in
:mod:`app.dashboard.sparkline`; :func:`register_filters` names them all.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from markupsafe import Markup, escape

from app.timestamps import rfc3339

from app.dashboard.failure_details import (
    break_after,
    break_long_words,
    error_count,
    error_items,
    format_entity,
    found_by_earlier_failure,
    json_preview,
    matching_items,
    pretty_json,
    text_details,
    validator_name,
    what_to_do,
)
from app.dashboard.formatting import (
    clock_utc,
    code_system_name,
    event_facts,
    file_size,
    format_rfc3339,
    format_span,
    format_utc,
    history_label,
    job_moment,
    percent,
    plural,
    show_bidi_controls,
    status_label,
    thousands,
    time_ago,
    truncate_text,
)
from app.dashboard.links import retry_href
from app.dashboard.sparkline import sparkline
from app.services.error_guidance import guidance_for
from app.services.failure_groups.states import by_precedence, substate_before
from app.services.json_values import ACTING_CONTROLS, with_controls_escaped
from app.services.processing_jobs.filter_sql import ID_PREFIX_MIN_DIGITS
from app.text_marks import INVISIBLE_CHARACTERS, isolate_text

_SHORT_ID = re.compile(r"(?=[^0-9]*[0-9])[0-9a-fA-F-]+\Z")
_HEX_LETTERS = re.compile(r"[a-fA-F-]+\Z")


def short_id_prefix(text: str | None) -> bool:
    """True when a search term looks like the start of a job id that is too short to be read as one.

    Hex digits and hyphens with at least one decimal digit, and 4 up to
    ``ID_PREFIX_MIN_DIGITS - 1`` hex digits (``eda1c0a``); or exactly
    ``ID_PREFIX_MIN_DIGITS - 1`` hex letters (``abcdefa``, one short of an
    id prefix: about one id in 1,000 starts with 7 letters). The search
    then matched it as text only, and the empty list says why. Shorter
    all-letter words (``face``, ``decade``) are words far more often than
    ids, so they get no hint.
    """
    if not text:
        return False
    digits = text.replace("-", "")
    if _SHORT_ID.match(text):
        return 4 <= len(digits) < ID_PREFIX_MIN_DIGITS
    return _HEX_LETTERS.match(text) is not None and len(digits) == ID_PREFIX_MIN_DIGITS - 1


#: What :func:`shown` rewrites: the acting controls (json_values) and the
#: invisible characters the pages mark (formatting.INVISIBLE_CHARACTERS).
_NOT_SHOWN = re.compile("[" + ACTING_CONTROLS + "".join(INVISIBLE_CHARACTERS) + "]")


def _shown_as(match: re.Match[str]) -> str:
    character = match.group()
    if character in INVISIBLE_CHARACTERS:
        return f"[{INVISIBLE_CHARACTERS[character][0]}]"
    return with_controls_escaped(character)


def shown(value: Any) -> Any:
    """Jinja's ``finalize``: what every ``{{ ... }}`` of a page writes, a
    string (markup too) with each acting control character as its escape
    in ASCII (:func:`~app.services.json_values.with_controls_escaped`: ESC
    -> ``\\u001b``) and each invisible character as its mark in plain text
    (``[ZWSP]``; ``bidi_shown`` gives it a styled span where it is used),
    any other value as it is.

    Worker text may hold such characters (a message, a parameterised group
    title, a document id); HTML 5 text may not hold the controls (a parse
    error: shown as nothing or as a box), so an operator would not see them,
    and a page copied into a terminal would act on them; the invisible ones
    would be copied along unseen into the search box. Markup keeps its
    tags: no tag, attribute or entity this app writes holds one of these
    characters, so any in markup came from escaped text."""
    if isinstance(value, str) and _NOT_SHOWN.search(value) is not None:
        rewritten = _NOT_SHOWN.sub(_shown_as, value)
        return Markup(rewritten) if isinstance(value, Markup) else rewritten
    return value


def outcome_title(title: Any, messages: list[tuple[str, Any]]) -> Markup:
    """A page's ``<title>`` text led by the outcome its action's redirect
    flashed (``messages``: ``get_flashed_messages(with_categories=true)``):
    ``Error: `` for an error (unless the title says so already), else the
    first other message (``Resolved group 2. · Group …``; worker text in a
    ``[before, text, after]`` message isolated and marked). The title is read
    out when the page loads, where a status message already on the page is
    not announced (WCAG 2.2, 2.4.2 and 4.1.3; a trial heard nothing after
    Resolve). Returns markup: ``title`` is the page's escaped title block."""
    title = Markup(title) if isinstance(title, Markup) else escape(title)
    if any(category == "error" for category, _ in messages):
        return title if title.startswith("Error: ") else Markup("Error: ") + title
    for _, message in messages:
        text = message if isinstance(message, str) else f"{message[0]}{isolate_text(message[1])}{message[2]}"
        return Markup("{} · {}").format(text, title)
    return title


def register_filters(app: Flask) -> None:
    """Register every dashboard filter on ``app``."""
    app.add_template_filter(format_utc, "utc")
    app.add_template_filter(clock_utc, "clock_utc")
    app.add_template_filter(status_label, "status_label")
    app.add_template_filter(time_ago, "ago")
    app.add_template_filter(job_moment, "moment")
    app.add_template_filter(format_rfc3339, "rfc3339")
    app.add_template_filter(rfc3339, "rfc3339_exact")  # to the microsecond: a failure's identity in a form
    app.add_template_filter(pretty_json, "pretty_json")
    app.add_template_filter(json_preview, "json_preview")
    app.add_template_filter(file_size, "file_size")
    app.add_template_filter(error_items, "error_items")
    app.add_template_filter(error_count, "error_count")
    app.add_template_filter(matching_items, "matching_items")
    app.add_template_filter(found_by_earlier_failure, "found_by_earlier_failure")
    app.add_template_filter(break_after, "break_after")
    app.add_template_filter(break_long_words, "break_long_words")
    app.add_template_filter(format_entity, "entity")
    app.add_template_filter(truncate_text, "truncate_text")
    app.add_template_filter(isolate_text, "isolate")
    app.add_template_filter(show_bidi_controls, "bidi_shown")
    app.add_template_filter(outcome_title, "outcome_title")
    app.add_template_filter(code_system_name, "code_system_name")
    app.add_template_filter(format_span, "span")
    app.add_template_filter(percent, "percent")
    app.add_template_filter(thousands, "thousands")
    app.add_template_filter(event_facts, "event_facts")
    app.add_template_filter(plural, "plural")
    app.add_template_filter(validator_name, "validator_name")
    app.add_template_filter(text_details, "text_details")
    app.add_template_filter(what_to_do, "what_to_do")
    app.add_template_filter(history_label, "history_label")
    app.add_template_filter(sparkline, "sparkline")
    app.add_template_filter(retry_href, "retry_href")
    app.add_template_filter(short_id_prefix, "short_id_prefix")
    app.add_template_filter(by_precedence, "by_precedence")
    app.add_template_filter(substate_before, "substate_before")
    app.add_template_filter(guidance_for, "guidance")
