"""What a FHIR string may contain (pure), shared by body parsing, validation and search.

R4 datatypes.html#string: strings SHALL NOT contain Unicode character points below 32,
except for tab, carriage return and line feed. Python strings can also hold lone UTF-16
surrogates (a JSON "\\ud800" escape decodes to one): they are not characters, no UTF-8
encoder accepts them, and PostgreSQL's JSONB refuses the NUL character. Either used to get
as far as the database and fail there (500, with half a write left behind).
"""

from __future__ import annotations

import re

FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")


def forbidden_char(text: str) -> str | None:
    """A description of the first character a FHIR string may not hold, or None."""
    match = FORBIDDEN.search(text)
    if match is None:
        return None
    char = match.group()
    if "\ud800" <= char <= "\udfff":
        return f"a lone UTF-16 surrogate (U+{ord(char):04X})"
    return f"the control character U+{ord(char):04X} (below U+0020 only tab, CR and LF are allowed)"
