"""Adapter for ASP.NET Core ``ValidationProblemDetails`` (the
``aspnetcore-validation-problem`` format).

What an ASP.NET Core API answers when model validation fails (``[ApiController]``,
``Results.ValidationProblem``, ``ControllerBase.ValidationProblem``): an RFC
9457 problem whose ``errors`` maps each ``ModelState`` key to its messages::

    {"type": "https://tools.ietf.org/html/rfc9110#section-15.5.1",
     "title": "One or more validation errors occurred.", "status": 400,
     "errors": {"Entities[0].Code": ["The Code field is required."],
                "$.entities[1].span.end": ["The JSON value could not be converted to System.Int32. Path: ..."]},
     "traceId": "00-..."}

There is no .NET runtime in this project: the tests use payloads written to
Microsoft's documented shape (``Microsoft.AspNetCore.Mvc.ValidationProblemDetails``)
and DataAnnotations' default English messages.

One item per message, in the order of the keys, then of each key's messages.

**Keys become pointers** (:func:`model_state_key_to_pointer`):

* ``""`` -- an error of the whole model -- is ``""``;
* a key starting with ``$`` is a System.Text.Json path (a body that could not
  be read): ``$.entities[1].span.end`` -> ``/entities/1/span/end``,
  ``$['odd name']`` -> ``/odd name``; names are taken as they are, since they
  are the document's own;
* any other key is a .NET model path, ``Name`` and ``[index]`` steps joined by
  dots: ``Entities[0].CodeSystem`` -> ``/entities/0/code_system``. **Casing
  rule:** each name is converted to snake_case exactly as .NET 8's
  ``JsonNamingPolicy.SnakeCaseLower`` converts it (``CodeSystem`` ->
  ``code_system``, ``EntityType`` -> ``entity_type``, ``entityType`` ->
  ``entity_type``; a snake_case name is unchanged), because the entity
  document's names are snake_case: a .NET worker binds them with that policy,
  and its ModelState keys hold the C# property names (or, with
  ``SystemTextJsonValidationMetadataProvider``, the JSON names -- which the
  rule leaves alone). A bracket holding anything but digits is a dictionary
  key, kept as it is.

A key that fits neither grammar gets pointer ``""``; the key itself is always
kept in ``ctx.key``.

**Messages.** The default DataAnnotations and model-binding messages are
recognised and turned into a rule and a message without the value:
``The X field is required.`` -> ``aspnetcore.required`` "is required",
``The field X must be between 0 and 1.`` -> ``aspnetcore.range`` "must be
between 0 and 1", ``The value 'abc' is not valid for X.`` ->
``aspnetcore.value_invalid`` "is not a valid value" (the value dropped),
System.Text.Json's read errors -> ``aspnetcore.json_invalid`` /
``aspnetcore.json_conversion`` (their text may quote the body). Any other
message -- a custom ``ErrorMessage``, ``IValidatableObject``, FluentValidation
-- is the worker's own text and is kept as ``aspnetcore.validation``: as for
``normalized`` items, it must not hold document text.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from app.services.error_details.errors import InvalidErrorDetailsError, check_each
from app.services.error_details.items import make_item
from app.services.json_pointer import escape_token, json_pointer

#: Members of a ProblemDetails (RFC 9457) object, one of which marks a
#: ValidationProblemDetails beside its ``errors`` object.
PROBLEM_MEMBERS = ("type", "title", "status", "detail", "instance", "traceId")

_NAME = r"[^.\[\]]+"
_MODEL_KEY = re.compile(rf"(?:{_NAME}|\[[^\]]*\])(?:\.{_NAME}|\[[^\]]*\])*")
_MODEL_STEP = re.compile(rf"\.?({_NAME})|\[([^\]]*)\]")
_JSON_PATH_STEP = re.compile(r"\.([^.\[\]]+)|\['((?:[^'\\]|\\.)*)'\]|\[(\d+)\]", re.ASCII)

_NUMBER = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_PATH_SUFFIX = r"(?: ?Path: (?P<path>\S*) \| LineNumber: (?P<line>\d+) \| BytePositionInLine: (?P<byte>\d+)\.)?"

# (rule, pattern over the whole message, message template over the groups).
_TEMPLATES: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (rule, re.compile(pattern, re.DOTALL | re.ASCII), message)  # ASCII: "\d" alone takes "٣"
    for rule, pattern, message in (
        ("required", r"The (?P<name>.+) field is required\.", "is required"),
        ("body_required", r"A non-empty request body is required\.", "a non-empty body is required"),
        ("range", rf"The field (?P<name>.+) must be between (?P<minimum>{_NUMBER}) and (?P<maximum>{_NUMBER})\.",
         "must be between {minimum} and {maximum}"),
        ("max_length", r"The field (?P<name>.+) must be a string or array type with a maximum length of '(?P<maximum>\d+)'\.",
         "must be at most {maximum} character(s) or item(s) long"),
        ("min_length", r"The field (?P<name>.+) must be a string or array type with a minimum length of '(?P<minimum>\d+)'\.",
         "must be at least {minimum} character(s) or item(s) long"),
        ("string_length", r"The field (?P<name>.+) must be a string with a maximum length of (?P<maximum>\d+)\.",
         "must be at most {maximum} character(s) long"),
        ("string_length", r"The field (?P<name>.+) must be a string with a minimum length of (?P<minimum>\d+) "
         r"and a maximum length of (?P<maximum>\d+)\.",
         "must be {minimum} to {maximum} character(s) long"),
        ("regular_expression", r"The field (?P<name>.+) must match the regular expression '(?P<pattern>.*)'\.",
         "does not match the pattern {pattern}"),
        ("email_address", r"The (?P<name>.+) field is not a valid e-mail address\.", "is not a valid e-mail address"),
        ("url", r"The (?P<name>.+) field is not a valid fully-qualified http, https, or ftp URL\.",
         "is not a valid http, https or ftp URL"),
        ("phone", r"The (?P<name>.+) field is not a valid phone number\.", "is not a valid phone number"),
        ("compare", r"'(?P<name>.+)' and '(?P<other>.+)' do not match\.", "does not match '{other}'"),
        ("value_invalid", r"The value '.*' is not valid for (?P<name>.+)\.", "is not a valid value"),
        ("value_invalid", r"The value '.*' is not valid\.", "is not a valid value"),
        ("value_invalid", r"The value '.*' is invalid\.", "is not a valid value"),
        ("value_must_be_number", r"The field (?P<name>.+) must be a number\.", "must be a number"),
        ("json_conversion", rf"The JSON value could not be converted to (?P<target_type>[^\s]+?)\.{_PATH_SUFFIX}",
         "could not be converted to {target_type}"),
        ("json_invalid", r"The input was not valid JSON\.|The input was not valid\.", "is not valid JSON"),
        ("json_invalid", rf".*\bPath: (?P<path>\S*) \| LineNumber: (?P<line>\d+) \| BytePositionInLine: (?P<byte>\d+)\.",
         "is not valid JSON here"),
    )
)  # fmt: skip

# Groups copied to ctx (never the value, never the C# display name).
_CTX_GROUPS = {"minimum": "minimum", "maximum": "maximum", "pattern": "pattern", "target_type": "target_type",
               "line": "line", "byte": "byte_position", "other": "other_property"}  # fmt: skip


def aspnetcore_items(problem: Any) -> list[dict[str, Any]]:
    """Turn a ``ValidationProblemDetails`` into items.

    Args:
        problem: the problem object as JSON (``errors`` required: an object
            whose values are arrays of strings; the other members are not read).

    Returns:
        Raw items (see the module docstring).

    Raises:
        InvalidErrorDetailsError: not an object (``""``); ``errors`` missing
            or not an object (``/errors``); a value not an array of strings
            (``/errors/<key>[/N]``: the first fault of every such key,
            :func:`~app.services.error_details.errors.check_each`).
    """
    if not isinstance(problem, Mapping):
        raise InvalidErrorDetailsError("", "must be an ASP.NET Core ValidationProblemDetails object")
    errors = problem.get("errors")
    if not isinstance(errors, Mapping):
        raise InvalidErrorDetailsError("/errors", "must be an object mapping each field to its messages")
    members = list(errors.items())
    tokens = [escape_token(str(key)) for key, _ in members]
    per_key = check_each(members, _key_items, "/errors", tokens=tokens)
    return [item for items in per_key for item in items]


def _key_items(member: tuple[Any, Any], where: str) -> list[dict[str, Any]]:
    """The items of one ``errors`` member, ``(key, messages)`` at ``where``;
    its first fault raised (:func:`check_each` names every member's)."""
    key, messages = member
    if not isinstance(messages, (list, tuple)):
        raise InvalidErrorDetailsError(where, "must be an array of messages")
    pointer = model_state_key_to_pointer(key)
    items = []
    for index, message in enumerate(messages):
        if not isinstance(message, str):
            raise InvalidErrorDetailsError(f"{where}/{index}", "must be a string")
        items.append(_item(key, pointer, message))
    return items


def _item(key: str, pointer: str | None, message: str) -> dict[str, Any]:
    rule, text, ctx = _read_message(message.strip())
    json_path = ctx.pop("path", None)
    if pointer is None and isinstance(json_path, str):
        pointer = model_state_key_to_pointer(json_path)
    ctx = {"key": key, **ctx}
    return make_item(f"aspnetcore.{rule}", "error", text, pointer or "", rule=rule, ctx=ctx)


def _read_message(message: str) -> tuple[str, str, dict[str, Any]]:
    for rule, pattern, template in _TEMPLATES:
        match = pattern.fullmatch(message)
        if match is None:
            continue
        groups = {name: value for name, value in match.groupdict().items() if value is not None}
        ctx: dict[str, Any] = {}
        for group, ctx_key in _CTX_GROUPS.items():
            if group in groups:
                numeric = group in ("minimum", "maximum", "line", "byte")
                ctx[ctx_key] = _number(groups[group]) if numeric else groups[group]
        if "path" in groups:
            ctx["path"] = groups["path"]
        text = template.format_map({name: groups.get(name, "") for name in _placeholders(template)})
        return rule, text, ctx
    if not message:
        return "validation", "failed validation", {}
    return "validation", message, {}


def _placeholders(template: str) -> list[str]:
    return re.findall(r"\{(\w+)\}", template)


#: The largest integer an IEEE 754 double holds exactly (I-JSON, RFC 7493
#: section 2.2): beyond it a reader of the stored JSON may round it.
_EXACT_INTEGER = 2**53 - 1


def _number(text: str) -> int | float | str:
    """A message's number (``_NUMBER``, ASCII digits) as JSON can hold it
    (RFC 7493, I-JSON): an integer up to 2**53 - 1 in magnitude, else a
    finite double that is not a non-zero number rounded to 0; otherwise the
    text as written. ``float()`` made ``1e400`` and a 400-digit integer
    infinity, which no JSON column stores (a 500), and ``int()`` refuses
    more than 4,300 digits."""
    if "." not in text and "e" not in text.lower():
        digits = text.lstrip("-").lstrip("0") or "0"
        if len(digits) <= len(str(_EXACT_INTEGER)) and int(digits) <= _EXACT_INTEGER:
            return int(text)
        return text
    value = float(text)
    # Infinity, or 0 for a number that is not zero (1e-400): either would
    # change what the message says, as the API refuses such a body number.
    if not math.isfinite(value) or (value == 0 and any(c in "123456789" for c in text.lower().partition("e")[0])):
        return text
    return value


def model_state_key_to_pointer(key: str) -> str | None:
    """An RFC 6901 pointer for a ModelState key, or ``None`` when it fits no
    grammar (the rules are in the module docstring).

    >>> model_state_key_to_pointer("Entities[0].CodeSystem")
    '/entities/0/code_system'
    >>> model_state_key_to_pointer("$.entities[1]['span'].end")
    '/entities/1/span/end'
    """
    if key == "":
        return ""
    if key.startswith("$"):
        return _json_path_pointer(key[1:])
    if _MODEL_KEY.fullmatch(key) is None:
        return None
    tokens: list[str] = []
    for match in _MODEL_STEP.finditer(key):
        name, bracket = match.groups()
        tokens.append(snake_case_lower(name) if name is not None else bracket)
    return json_pointer(tokens)


def _json_path_pointer(path: str) -> str | None:
    tokens: list[str] = []
    position = 0
    while position < len(path):
        match = _JSON_PATH_STEP.match(path, position)
        if match is None:
            return None
        name, quoted, index = match.groups()
        if quoted is not None:
            tokens.append(re.sub(r"\\(.)", r"\1", quoted))
        else:
            tokens.append(name if name is not None else index)
        position = match.end()
    return json_pointer(tokens)


def snake_case_lower(name: str) -> str:
    """Convert a .NET property name as ``JsonNamingPolicy.SnakeCaseLower``
    (.NET 8, ``JsonSeparatorNamingPolicy``) does.

    An upper-case letter after a lower-case letter or digit starts a word; in
    a run of capitals the last one starts a word when a lower-case letter
    follows (``XMLReader`` -> ``xml_reader``, ``SHA512Hash`` ->
    ``sha512_hash``); spaces between words become one ``_``, leading and
    trailing ones are dropped; any other character (``_`` included) is kept
    and ends the word. Letters are lower-cased.
    """
    out: list[str] = []
    state = "start"  # start | upper | lower_or_digit | space
    for position, char in enumerate(name):
        category = unicodedata.category(char)
        if category == "Lu":
            if state in ("lower_or_digit", "space"):
                out.append("_")
            elif state == "upper" and position + 1 < len(name) and name[position + 1].islower():
                out.append("_")
            out.append(char.lower())
            state = "upper"
        elif category in ("Ll", "Nd"):
            if state == "space":
                out.append("_")
            out.append(char)
            state = "lower_or_digit"
        elif category == "Zs":
            if state != "start":
                state = "space"
        else:
            out.append(char)
            state = "start"
    return "".join(out)
