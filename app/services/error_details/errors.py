"""Errors raised while normalizing ``error_details``.

All are ``ValueError`` subclasses carrying no HTTP knowledge; the API layer
maps them to problem+json (a 422 for a malformed payload, a 422 or 400 for an
unknown format name, a 422 asking for the name when the payload fits several
formats). No message quotes the offending value.
"""

from __future__ import annotations

from typing import Any


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

    Attributes:
        pointer: RFC 6901 JSON Pointer to the offending place inside the
            ``error_details`` value (``""`` for the value itself), e.g.
            ``"/errors/3/severity"``.
        reason: what is wrong, naming what was expected, never the value.
    """

    def __init__(self, pointer: str, reason: str) -> None:
        super().__init__(f"{pointer or '(root)'}: {reason}")
        self.pointer = pointer
        self.reason = reason


class AmbiguousErrorFormatError(ValueError):
    """No ``error_format`` was given and the details fit more than one format.

    Recognition never guesses: the worker is asked to name the format.

    Attributes:
        candidates: the formats the details fit, in ``ERROR_FORMATS`` order.
    """

    def __init__(self, candidates: tuple[str, ...]) -> None:
        super().__init__("error_details fit several formats: " + ", ".join(candidates))
        self.candidates = candidates
