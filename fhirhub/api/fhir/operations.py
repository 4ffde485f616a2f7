"""Serving the operations registry: one view for every registered operation, and the
OperationDefinitions it generates (`[base]/OperationDefinition/{id}`, read and search).

Routes are added per registered (type, level, code) when the app is built, so an operation
is reachable exactly where its definition says. GET is allowed only for operations that do
not affect state; GET query parameters and a POST Parameters body go through the same
parsing (fhirhub/operations/parameters.py), and errors are FhirErrors like everywhere else.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Flask, Response

from fhirhub.api.fhir.render import fhir_response
from fhirhub.api.fhir.requests import current_request, hub, resource_body
from fhirhub.api.fhir.responses import read_response
from fhirhub.fhir.errors import MethodNotAllowed, NotFound
from fhirhub.operations import parameters
from fhirhub.operations.model import Call, Policy, Result
from fhirhub.operations.registry import OperationRegistry

PREFIX = "operations"
DEFINITION_READ = f"{PREFIX}.definition_read"
DEFINITION_SEARCH = f"{PREFIX}.definition_search"
# Registry definitions are conformance data (like /metadata); stored ones are read through
# the resource service, which applies the policy.
ENFORCED_ENDPOINTS = frozenset({DEFINITION_READ, DEFINITION_SEARCH})


def _endpoint(resource_type: str | None, level: str, code: str) -> str:
    return f"{resource_type or 'system'}__{level}__{code}".replace("-", "_")


def install(app: Flask, registry: OperationRegistry, prefix: str) -> None:
    bp = Blueprint(PREFIX, __name__)
    bp.add_url_rule(
        "/OperationDefinition/<definition_id>", "definition_read", _read_definition, methods=["GET"]
    )
    bp.add_url_rule("/OperationDefinition", "definition_search", _search_definitions)
    for resource_type, level, code in registry.routes():
        operation = registry.find(resource_type, level, code)
        assert operation is not None
        path = {
            "system": f"/${code}",
            "type": f"/{resource_type}/${code}",
            "instance": f"/{resource_type}/<resource_id>/${code}",
        }[level]
        # GET is routed for every operation, so a GET of a state-changing one answers 405
        # (not a search of a type named "$code").
        methods = ["GET", "POST"]
        bp.add_url_rule(
            path,
            _endpoint(resource_type, level, code),
            _view,
            methods=methods,
            defaults={"_route": (resource_type, level, code)},
        )
    app.register_blueprint(bp, url_prefix=prefix)


def route_of(endpoint: str, args: dict[str, Any]) -> tuple[str | None, str, str] | None:
    if not endpoint.startswith(PREFIX + "."):
        return None
    route = args.get("_route")
    return (route[0], route[1], route[2]) if route else None


def authorize(policy: Policy, endpoint: str, args: dict[str, Any]) -> bool:
    """Apply the operation's access rule; False when `endpoint` is not an operation."""
    if endpoint in ENFORCED_ENDPOINTS:
        return True
    route = route_of(endpoint, args)
    if route is None:
        return False
    the_hub = hub()
    operation = the_hub.operations.find(*route)
    if operation is None:
        return False
    resource_type, level, _ = route
    reader = None
    if level == "instance" and resource_type is not None:
        resource_id = str(args["resource_id"])

        def reader() -> object:
            return the_hub.resources.read(resource_type, resource_id)

    operation.access.check(policy, reader)
    return True


def _view(_route: tuple[str | None, str, str], resource_id: str | None = None) -> Response:
    the_hub = hub()
    operation = the_hub.operations.find(*_route)
    if operation is None:
        raise NotFound(f"no operation at {current_request().path}")
    req = current_request()
    if req.method == "GET" and operation.affects_state:
        raise MethodNotAllowed(f"${operation.code} changes data: use POST", ["POST"])
    if resource_id is not None:
        the_hub.resources.check_id(resource_id)
    query = parameters.from_query(operation, req.args.items(multi=True))
    body: dict[str, list[Any]] = {}
    if req.method == "POST" and req.content_length != 0 and req.get_data(cache=True):
        body = parameters.from_body(operation, resource_body(), the_hub.validator.validate)
    call = Call(
        operation=operation,
        resource_type=_route[0],
        resource_id=resource_id,
        method=req.method,
        params=parameters.merged(operation, query, body),
        base=the_hub.settings.fhir_base,
    )
    result = operation.handler(call)
    if isinstance(result, Result):
        return fhir_response(result.body, result.status, result.headers)
    return fhir_response(result)


def _read_definition(definition_id: str) -> Response:
    the_hub = hub()
    found = the_hub.operations.definition(definition_id)
    if found is not None:
        return fhir_response(found)
    return read_response(the_hub.resources.read("OperationDefinition", definition_id))


def _search_definitions() -> Response:
    """The registry's definitions that match, ahead of any stored OperationDefinitions."""
    the_hub = hub()
    pairs = list(current_request().args.items(multi=True))
    kind = "OperationDefinition"
    bundle = the_hub.search.search(kind, pairs, strict=False, compartment=None, self_path=kind)
    criteria = urlencode([(k, v) for k, v in pairs if not k.startswith("_") or k == "_id"])
    base = the_hub.settings.fhir_base
    ours = [
        d
        for d in the_hub.operations.definitions()
        if not criteria or the_hub.search.matches(f"OperationDefinition?{criteria}", d)
    ]
    entries = [
        {
            "fullUrl": f"{base}/OperationDefinition/{d['id']}",
            "resource": d,
            "search": {"mode": "match"},
        }
        for d in ours
    ]
    bundle["entry"] = entries + list(bundle.get("entry", []))
    if "total" in bundle:
        bundle["total"] = int(bundle["total"]) + len(ours)
    return fhir_response(bundle)
