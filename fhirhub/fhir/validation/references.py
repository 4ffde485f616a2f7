"""Reference.reference format checks (pure); also covers ref-1 (local references resolve).

Accepted: `Type/id` and `Type/id/_history/vid` with a known type, absolute http(s) URLs,
`urn:uuid:` and `urn:oid:` URNs, `#id` naming a contained resource (a bare `#` only from
inside a contained resource, meaning its container), and conditional references
`Type?query`, which only make sense inside a transaction that resolves them.
"""

from __future__ import annotations

import re
from collections.abc import Collection

_RELATIVE = re.compile(
    r"([A-Z][A-Za-z]+)/([A-Za-z0-9\-\.]{1,64})(/_history/([A-Za-z0-9\-\.]{1,64}))?", re.ASCII
).fullmatch
_ABSOLUTE = re.compile(r"https?://[^\s/]+(/\S*)?", re.ASCII).fullmatch
_UUID = re.compile(r"urn:uuid:[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}").fullmatch
_OID = re.compile(r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+").fullmatch
_CONDITIONAL = re.compile(r"([A-Z][A-Za-z]+)\?(\S+)", re.ASCII).fullmatch


class ReferenceChecker:
    def __init__(self, resource_types: Collection[str]) -> None:
        self._types = frozenset(resource_types)

    def check(
        self,
        ref: str,
        *,
        contained_ids: Collection[str],
        in_contained: bool,
        allow_conditional: bool,
        targets: frozenset[str] | None,
    ) -> str | None:
        """None if fine, else why `ref` is not a usable reference."""
        if ref.startswith("#"):
            if ref == "#":
                if in_contained:
                    return None
                return "'#' refers to the containing resource and is only valid inside one"
            if ref[1:] not in contained_ids:
                return f"{ref!r} does not match the id of any contained resource (ref-1)"
            return None
        m = _RELATIVE(ref)
        if m:
            return self._type_ok(ref, m.group(1), targets)
        if ref.startswith(("http://", "https://")):
            return None if _ABSOLUTE(ref) else f"{ref!r} is not a valid absolute URL"
        if ref.startswith("urn:uuid:"):
            return None if _UUID(ref) else f"{ref!r} is not a valid urn:uuid reference"
        if ref.startswith("urn:oid:"):
            return None if _OID(ref) else f"{ref!r} is not a valid urn:oid reference"
        m = _CONDITIONAL(ref)
        if m:
            if not allow_conditional:
                return (
                    f"conditional reference {ref!r} is only allowed inside a transaction "
                    "Bundle, where the server resolves it"
                )
            return self._type_ok(ref, m.group(1), targets)
        head = ref.partition("/")[0].partition("?")[0]
        if "/" in ref and head and head[0].isupper() and head not in self._types:
            return f"{ref!r}: {head!r} is not a FHIR resource type"
        return (
            f"{ref!r} is not a valid reference (expected Type/id, an absolute URL, "
            "urn:uuid:/urn:oid:, or #contained-id)"
        )

    def _type_ok(self, ref: str, type_name: str, targets: frozenset[str] | None) -> str | None:
        if type_name not in self._types:
            return f"{ref!r}: {type_name!r} is not a FHIR resource type"
        if targets is not None and type_name not in targets:
            allowed = ", ".join(sorted(targets))
            return f"{ref!r}: a reference to {type_name} is not allowed here (allowed: {allowed})"
        return None
