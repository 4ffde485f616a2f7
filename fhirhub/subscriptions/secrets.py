"""Write-only secrets of notification subscribers: signing keys and header values (pure).

An Endpoint's or Subscription's signing secret and its header lines (often
`Authorization: Bearer ...` for the receiver) are the receiver's credentials. They are kept
in the stored resource, where the worker reads them, but every response and every
notification payload shows them as MASK: read, vread, search, includes, history,
$everything, batch entries alike. The one exception is the response to the write in which
the server generated a secret (create without one, or a new address): that value is shown
there, once (`reveal`).

Writing a resource back as it was read keeps the secrets: a signing secret of MASK means
"unchanged" (fhirhub/subscriptions/hooks.py), and a header line `Name: MASK` takes the
value the stored version has for that header.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from fhirhub.subscriptions.model import SIGNING_SECRET

MASK = "[masked]"
HOLDERS = frozenset({"Endpoint", "Subscription"})

_revealed: ContextVar[set[str] | None] = ContextVar("fhirhub_revealed_secrets", default=None)


def start_revealing() -> object:
    """For one request: secrets generated from now on may appear unmasked in its response.
    Returns the token to pass to `stop_revealing`."""
    return _revealed.set(set())


def stop_revealing(token: object) -> None:
    _revealed.reset(token)  # type: ignore[arg-type]


def reveal(secret: str) -> None:
    shown = _revealed.get()
    if shown is not None:
        shown.add(secret)


def masked(body: Any) -> Any:
    """`body` with every secret masked; the same object when there is nothing to mask (the
    input is never changed: it may be a cached or stored resource)."""
    if not isinstance(body, dict):
        return body
    shown = _revealed.get() or set()
    return _mask(body, shown)


def _mask(resource: dict[str, Any], shown: set[str]) -> dict[str, Any]:
    kind = resource.get("resourceType")
    out = resource
    if kind in HOLDERS:
        out = _mask_holder(resource, shown)
    elif kind == "Bundle":
        entries = resource.get("entry")
        if isinstance(entries, list):
            new_entries = [_mask_entry(e, shown) for e in entries]
            if any(a is not b for a, b in zip(new_entries, entries, strict=True)):
                out = {**resource, "entry": new_entries}
    elif kind == "Parameters":
        params = resource.get("parameter")
        if isinstance(params, list):
            new_params = [_mask_entry(p, shown) for p in params]
            if any(a is not b for a, b in zip(new_params, params, strict=True)):
                out = {**resource, "parameter": new_params}
    contained = out.get("contained")
    if isinstance(contained, list):
        inner = [_mask(c, shown) if isinstance(c, dict) else c for c in contained]
        if any(a is not b for a, b in zip(inner, contained, strict=True)):
            out = {**out, "contained": inner}
    return out


def _mask_entry(entry: Any, shown: set[str]) -> Any:
    if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
        return entry
    resource = _mask(entry["resource"], shown)
    return entry if resource is entry["resource"] else {**entry, "resource": resource}


def _mask_holder(resource: dict[str, Any], shown: set[str]) -> dict[str, Any]:
    out = dict(resource)
    changed = False
    extensions = resource.get("extension")
    if isinstance(extensions, list):
        new_ext = [_mask_secret(e, shown) for e in extensions]
        if any(a is not b for a, b in zip(new_ext, extensions, strict=True)):
            out["extension"] = new_ext
            changed = True
    if resource.get("resourceType") == "Endpoint":
        headers = mask_headers(resource.get("header"))
        if headers is not resource.get("header"):
            out["header"] = headers
            changed = True
    else:
        channel = resource.get("channel")
        if isinstance(channel, dict):
            headers = mask_headers(channel.get("header"))
            if headers is not channel.get("header"):
                out["channel"] = {**channel, "header": headers}
                changed = True
    return out if changed else resource


def _mask_secret(extension: Any, shown: set[str]) -> Any:
    if not isinstance(extension, dict) or extension.get("url") != SIGNING_SECRET:
        return extension
    value = extension.get("valueString")
    if value == MASK or (isinstance(value, str) and value in shown):
        return extension
    return {**extension, "valueString": MASK}


def mask_headers(headers: Any) -> Any:
    if not isinstance(headers, list) or not headers:
        return headers
    out = [_mask_header(h) for h in headers]
    return out if out != headers else headers


def _mask_header(line: Any) -> Any:
    if not isinstance(line, str) or ":" not in line:
        return line
    name = line.split(":", 1)[0].strip()
    return f"{name}: {MASK}"


def restore_headers(headers: Any, previous: Any) -> tuple[list[Any] | None, str | None]:
    """Header lines with `Name: MASK` given the stored version's value for that header;
    (lines, None), or (None, the name) when the stored version has no such header."""
    if not isinstance(headers, list):
        return headers, None
    known: dict[str, str] = {}
    for line in previous or []:
        if isinstance(line, str) and ":" in line:
            known.setdefault(line.split(":", 1)[0].strip().lower(), line)
    out: list[Any] = []
    for line in headers:
        if isinstance(line, str) and ":" in line and line.split(":", 1)[1].strip() == MASK:
            name = line.split(":", 1)[0].strip()
            if name.lower() not in known:
                return None, name
            out.append(known[name.lower()])
        else:
            out.append(line)
    return out, None
