"""Size limits of a normalized ``error_details`` envelope."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class DetailsLimits:
    """Caps applied when an envelope is built (see :func:`build_envelope`).

    Lengths count Unicode code points, as JSON Schema's ``maxLength`` does.
    The defaults are the limits written into
    ``schemas/error-details.v1.schema.json``; smaller limits still give
    envelopes valid against it, larger ones do not.

    Attributes:
        max_items: most items kept in ``errors``; the rest are dropped and the
            envelope says ``truncated: true``.
        max_message_length: longest ``message``.
        max_code_length: longest ``code``, ``rule``, ``entity.type`` and
            ``ctx`` key.
        max_pointer_length: longest ``pointer``.
        max_ctx_keys: most entries kept in an item's ``ctx`` (the first ones).
        max_ctx_string_length: longest string value in ``ctx``.

    Raises:
        ValueError: (on construction) a limit that is not an integer >= 1.
    """

    max_items: int = 200
    max_message_length: int = 500
    max_code_length: int = 100
    max_pointer_length: int = 1000
    max_ctx_keys: int = 20
    max_ctx_string_length: int = 200

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            # bool is an int in Python, but DetailsLimits(max_items=True) is a bug.
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{field.name} must be an integer >= 1")


DEFAULT_LIMITS = DetailsLimits()
