"""Errors raised while normalizing ``error_details``.

All are ``ValueError`` subclasses carrying no HTTP knowledge; the API layer
maps them to problem+json (a 422 for a malformed payload, a 422 or 400 for an
unknown format name, a 422 asking for the name when the payload fits several
formats). No message quotes the offending value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

#: At most this many faults inside ``error_details`` are named in one
#: answer (one per element, in order), then one more says how many elements
#: were left unchecked: a megabyte of bad items must not make a 25 MB 422.
MAX_NAMED_FAULTS = 50


class UnknownErrorFormatError(ValueError):
    """The declared ``error_format`` is not one of the accepted names.

    Attributes:
        error_format: the name given (any value; not quoted in the message).
        allowed: the accepted names, ``ERROR_FORMATS``.
    """

    def __init__(self, error_format: Any, allowed: tuple[str, ...]) -> None:
        super().__init__("unknown error_format; expected one of: " + ", ".join(allowed))
        self.error_format = error_format
        self.allowed = allowed


class InvalidErrorDetailsError(ValueError):
    """``error_details`` do not follow the format they are declared (or detected) in.

    Raised for one fault, or by :func:`check_each` for the faults of several
    elements at once: then ``pointer``/``reason`` are the first's and
    ``faults`` holds every one, in order.

    Attributes:
        pointer: RFC 6901 JSON Pointer to the offending place inside the
            ``error_details`` value (``""`` for the value itself), e.g.
            ``"/errors/3/severity"``.
        reason: what is wrong, naming what was expected, never the value.
        faults: ``[(pointer, reason), ...]``, at least one.
    """

    def __init__(self, pointer: str, reason: str, *, faults: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(f"{pointer or '(root)'}: {reason}")
        self.pointer = pointer
        self.reason = reason
        self.faults: list[tuple[str, str]] = list(faults) or [(pointer, reason)]


def check_each(
    elements: Sequence[Any],
    check: Callable[[Any, str], T],
    prefix: str,
    *,
    tokens: Sequence[str] | None = None,
) -> list[T]:
    """``[check(element, f"{prefix}/{index}") for each element]``, naming the
    faults of every element instead of only the first.

    A worker that sent twenty malformed items learns of all twenty in one
    422, as the schema check names every fault of the body; within one
    element, ``check`` stops at its first fault.

    Args:
        elements: the array's elements (parsed JSON).
        check: checks (and converts) one element; raises
            :class:`InvalidErrorDetailsError` with a pointer at or under the
            one it is given.
        prefix: the array's RFC 6901 pointer inside the details (``""``, ``"/errors"``).
        tokens: each element's reference token under ``prefix`` (escaped,
            RFC 6901), for the members of an object; default its index.

    Returns:
        The checked elements, in order.

    Raises:
        InvalidErrorDetailsError: with ``faults`` listing each faulty
            element's faults, at most :data:`MAX_NAMED_FAULTS`, then one at
            ``prefix`` counting the elements past them.
    """
    checked: list[T] = []
    faults: list[tuple[str, str]] = []
    for index, element in enumerate(elements):
        if len(faults) >= MAX_NAMED_FAULTS:
            faults.append((prefix, f"has {len(elements) - index} more element(s) not checked after "
                                   f"the first {MAX_NAMED_FAULTS} faults"))
            break
        try:
            checked.append(check(element, f"{prefix}/{index if tokens is None else tokens[index]}"))
        except InvalidErrorDetailsError as exc:
            faults.extend(exc.faults[: MAX_NAMED_FAULTS - len(faults)])
    if faults:
        raise InvalidErrorDetailsError(*faults[0], faults=faults)
    return checked


class AmbiguousErrorFormatError(ValueError):
    """No ``error_format`` was given and the details fit more than one format.

    Recognition never guesses: the worker is asked to name the format.

    Attributes:
        candidates: the formats the details fit, in ``ERROR_FORMATS`` order.
    """

    def __init__(self, candidates: tuple[str, ...]) -> None:
        super().__init__("error_details fit several formats: " + ", ".join(candidates))
        self.candidates = candidates
