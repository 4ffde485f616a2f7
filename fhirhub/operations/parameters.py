"""Input parameters of an operation, from a URL query or a Parameters body (pure).

One code path for both: each value is checked against its declared parameter (known name,
type, cardinality) and turned into a Python value; every problem is a 400 naming the
parameter, before the handler runs. Values keep FHIR's JSON shapes: primitives as their
JSON value, Reference as {"reference": ...}, complex types and resources as given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fhirhub.fhir.errors import BadRequest, Issue
from fhirhub.fhir.validation.primitives import checker_for
from fhirhub.operations.model import PRIMITIVES, URL_TYPES, Operation, Parameter

# Parameters every operation accepts in its URL without declaring them (http.html).
GENERAL = frozenset({"_format", "_pretty", "_summary", "_elements"})
INTEGERS = frozenset({"integer", "positiveInt", "unsignedInt"})
ResourceCheck = Callable[[dict[str, Any]], list[Issue]]


def _fail(name: str, message: str) -> BadRequest:
    text = f"parameter {name!r}: {message}"
    where = (f"Parameters.parameter.where(name = '{name}')",)
    return BadRequest(text, [Issue("invalid", text, expression=where)])


def from_query(operation: Operation, pairs: Iterable[tuple[str, str]]) -> dict[str, list[Any]]:
    """Parameters given in the URL (GET, or alongside a POST body)."""
    declared = operation.inputs()
    out: dict[str, list[Any]] = {}
    for name, raw in pairs:
        if name in GENERAL:
            continue
        parameter = declared.get(name)
        if parameter is None:
            raise _unknown(operation, name)
        if parameter.type not in URL_TYPES:
            raise _fail(name, f"a {parameter.type} cannot be given in the URL; POST Parameters")
        out.setdefault(name, []).append(_from_text(parameter, raw))
    return out


def from_body(
    operation: Operation, body: dict[str, Any], check: ResourceCheck | None = None
) -> dict[str, list[Any]]:
    """A Parameters resource, or (for `body_parameter`) the one resource input itself.
    `check`: validates the Parameters resource (data types, nested resources) first."""
    if body.get("resourceType") != "Parameters":
        name = operation.body_parameter
        if name is None:
            raise BadRequest(f"${operation.code} takes a Parameters resource as its POST body")
        parameter = operation.inputs()[name]
        return {name: [_resource(parameter, body, check)]}
    if check is not None:
        errors = [i for i in check(body) if i.severity in ("error", "fatal")]
        if errors:
            raise BadRequest(f"the Parameters resource is invalid: {errors[0].diagnostics}", errors)
    declared = operation.inputs()
    out: dict[str, list[Any]] = {}
    for index, entry in enumerate(body.get("parameter") or []):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise BadRequest(f"Parameters.parameter[{index}] needs a name")
        name = entry["name"]
        found = declared.get(name)
        if found is None:
            raise _unknown(operation, name)
        out.setdefault(name, []).append(_from_entry(found, entry))
    return out


def merged(operation: Operation, *sources: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Query and body parameters together, checked for cardinality as a whole."""
    out: dict[str, list[Any]] = {}
    for source in sources:
        for name, values in source.items():
            out.setdefault(name, []).extend(values)
    for parameter in operation.inputs().values():
        count = len(out.get(parameter.name, []))
        if count < parameter.min:
            raise _fail(parameter.name, f"is required (at least {parameter.min})")
        if not parameter.allows(count):
            raise _fail(parameter.name, f"may be given at most {parameter.max} time(s)")
    return out


def _unknown(operation: Operation, name: str) -> BadRequest:
    known = ", ".join(sorted(operation.inputs())) or "none"
    return _fail(name[:60], f"is not a parameter of ${operation.code} (known: {known})")


def _from_text(parameter: Parameter, raw: str) -> Any:
    name, kind = parameter.name, parameter.type
    if raw == "":
        raise _fail(name, "is empty")
    if kind == "Reference":
        return {"reference": raw}
    if kind == "boolean":
        if raw not in ("true", "false"):
            raise _fail(name, f"must be true or false, not {raw[:40]!r}")
        return raw == "true"
    if kind in INTEGERS:
        try:
            value: Any = int(raw)
        except ValueError:
            raise _fail(name, f"must be an integer, not {raw[:40]!r}") from None
    elif kind == "decimal":
        try:
            value = float(raw)
        except ValueError:
            raise _fail(name, f"must be a decimal, not {raw[:40]!r}") from None
    else:
        value = raw
    return _checked(parameter, value)


def _checked(parameter: Parameter, value: Any) -> Any:
    problem = checker_for(parameter.type)(value)
    if problem:
        raise _fail(parameter.name, problem)
    return value


def _from_entry(parameter: Parameter, entry: dict[str, Any]) -> Any:
    name, kind = parameter.name, parameter.type
    values = [k for k in entry if k.startswith("value")]
    if "part" in entry:
        raise _fail(name, "parts are not supported for this parameter")
    if kind[0].isupper() and kind not in _DATATYPES:
        if values or not isinstance(entry.get("resource"), dict):
            raise _fail(name, f"must carry a {kind} resource in `resource`")
        return _resource(parameter, entry["resource"], None)
    if "resource" in entry:
        raise _fail(name, f"must be a {kind} value, not a resource")
    expected = "value" + kind[0].upper() + kind[1:]
    if values != [expected]:
        # A string searched as a token may also arrive as a code.
        if not (parameter.search_type == "token" and values == ["valueCode"]):
            raise _fail(name, f"must be given as {expected}")
        expected = "valueCode"
    value = entry[expected]
    if kind in PRIMITIVES:
        return _checked(parameter, value)
    if not isinstance(value, dict):
        raise _fail(name, f"{expected} must be a JSON object")
    reference, identifier = value.get("reference"), value.get("identifier")
    if kind == "Reference" and not isinstance(reference, str) and not isinstance(identifier, dict):
        raise _fail(name, "a Reference needs a reference (or an identifier)")
    return value


def _resource(
    parameter: Parameter, resource: dict[str, Any], check: ResourceCheck | None
) -> dict[str, Any]:
    kind = parameter.type
    actual = resource.get("resourceType")
    if kind not in ("Resource", "DomainResource") and actual != kind:
        raise _fail(parameter.name, f"must be a {kind} resource, not {str(actual)[:40]!r}")
    if check is not None:
        errors = [i for i in check(resource) if i.severity in ("error", "fatal")]
        if errors:
            raise BadRequest(f"{parameter.name}: {errors[0].diagnostics}", errors)
    return resource


# Complex data types an operation may take (POST only); anything else capitalised is a
# resource type.
_DATATYPES = frozenset(
    {
        "Reference",
        "Identifier",
        "Coding",
        "CodeableConcept",
        "Period",
        "Quantity",
        "Duration",
        "Timing",
        "Attachment",
        "ContactPoint",
        "HumanName",
        "Address",
        "Range",
        "Ratio",
        "Money",
        "Annotation",
        "Signature",
        "SampledData",
        "Age",
        "Count",
        "Distance",
        "Meta",
    }
)
