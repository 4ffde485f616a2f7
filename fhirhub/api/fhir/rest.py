"""Thin views for the R4 RESTful interactions on resources (http.html)."""

from __future__ import annotations

from functools import partial
from typing import Any

from flask import Blueprint, Response, request

from fhirhub.api.fhir.render import fhir_response
from fhirhub.api.fhir.requests import hub, patch_body, query_string, resource_body
from fhirhub.api.fhir.responses import read_response, write_response
from fhirhub.fhir.errors import BadRequest, Issue, NotFound
from fhirhub.fhir.operation_outcome import outcome
from fhirhub.service import access
from fhirhub.service.history import HistoryRequest, history_bundle, instance_visible
from fhirhub.storage.documents import StoredVersion

bp = Blueprint("rest", __name__)


def _base() -> str:
    return hub().settings.fhir_base


@bp.route("/<resource_type>/<resource_id>", methods=["GET", "HEAD"])
def read(resource_type: str, resource_id: str) -> Response:
    return read_response(hub().resources.read(resource_type, resource_id))


@bp.get("/<resource_type>/<resource_id>/_history/<version_id>")
def vread(resource_type: str, resource_id: str, version_id: str) -> Response:
    return read_response(hub().resources.vread(resource_type, resource_id, version_id))


@bp.post("/<resource_type>")
def create(resource_type: str) -> Response:
    service = hub().resources
    service.check_type(resource_type)
    result = service.create(
        resource_type, resource_body(), if_none_exist=request.headers.get("If-None-Exist")
    )
    return write_response(_base(), result, 201 if result.created else 200)


@bp.put("/<resource_type>/<resource_id>")
def update(resource_type: str, resource_id: str) -> Response:
    service = hub().resources
    service.check_type(resource_type)
    result = service.update(
        resource_type, resource_id, resource_body(), if_match=request.headers.get("If-Match")
    )
    return write_response(_base(), result, 201 if result.created else 200)


@bp.put("/<resource_type>")
def conditional_update(resource_type: str) -> Response:
    service = hub().resources
    service.check_type(resource_type)
    if not request.query_string:
        raise BadRequest("PUT on a type needs search criteria (conditional update)")
    result = service.conditional_update(resource_type, query_string(), resource_body())
    return write_response(_base(), result, 201 if result.created else 200)


@bp.patch("/<resource_type>/<resource_id>")
def patch(resource_type: str, resource_id: str) -> Response:
    service = hub().resources
    service.check_type(resource_type)
    # application/json-patch+json: JSON Patch; application/fhir+json or json: FHIRPath Patch.
    media, operations = patch_body()
    result = service.patch(
        resource_type,
        resource_id,
        operations,
        if_match=request.headers.get("If-Match"),
        fhirpath=media != "application/json-patch+json",
    )
    return write_response(_base(), result, 200)


@bp.delete("/<resource_type>/<resource_id>")
def delete(resource_type: str, resource_id: str) -> Response:
    stored = hub().resources.delete(resource_type, resource_id)
    headers = {"ETag": stored.etag} if stored else {}
    return fhir_response(None, 204, headers)


@bp.delete("/<resource_type>")
def conditional_delete(resource_type: str) -> Response:
    service = hub().resources
    service.check_type(resource_type)
    if not request.query_string:
        raise BadRequest("DELETE on a type needs search criteria (conditional delete)")
    stored = service.conditional_delete(resource_type, query_string())
    return fhir_response(None, 204, {"ETag": stored.etag} if stored else {})


def _history(resource_type: str | None, resource_id: str | None) -> Response:
    the_hub = hub()
    if resource_type:
        the_hub.resources.check_type(resource_type)
    if resource_id:
        the_hub.resources.check_id(resource_id)
    req = HistoryRequest.from_args(resource_type, resource_id, request.args.to_dict())
    store = the_hub.store

    def prior(version: StoredVersion) -> StoredVersion | None:
        return store.version(version.resource_type, version.resource_id, version.version - 1)

    visible = access.version_visibility(resource_type, the_hub.definitions.resource_types, prior)
    if resource_type and resource_id:
        # An unknown instance, or one the token never saw a version of: the same 404.
        known = store.current(resource_type, resource_id) is not None
        if not known or (visible is not None and not instance_visible(store, req, visible)):
            raise NotFound(f"{resource_type}/{resource_id} is not known")
    return fhir_response(history_bundle(store, _base(), req, visible))


@bp.get("/<resource_type>/<resource_id>/_history")
def instance_history(resource_type: str, resource_id: str) -> Response:
    return _history(resource_type, resource_id)


@bp.get("/<resource_type>/_history")
def type_history(resource_type: str) -> Response:
    return _history(resource_type, None)


@bp.get("/_history")
def system_history() -> Response:
    return _history(None, None)


def _validation_target(body: dict[str, Any]) -> dict[str, Any]:
    if body.get("resourceType") != "Parameters":
        return body
    for parameter in body.get("parameter", []):
        if isinstance(parameter, dict) and parameter.get("name") == "resource":
            resource = parameter.get("resource")
            if isinstance(resource, dict):
                return resource
    raise BadRequest("$validate Parameters must contain a 'resource' parameter")


@bp.post("/<resource_type>/$validate")
@bp.post("/<resource_type>/<resource_id>/$validate")
def validate(resource_type: str, resource_id: str | None = None) -> Response:
    service = hub().resources
    service.check_type(resource_type)
    resource = _validation_target(resource_body())
    issues = list(service.validator.validate(resource))
    if resource.get("resourceType") != resource_type:
        issues.insert(0, Issue("invalid", f"resourceType must be {resource_type}"))
    if resource_id is not None and resource.get("id") != resource_id:
        issues.insert(0, Issue("invalid", f"id must be {resource_id} to update this instance"))
    if not issues:
        issues = [Issue("informational", "validation successful", severity="information")]
    return fhir_response(outcome(issues), 200)


@bp.post("/")
def batch_or_transaction() -> Response:
    from fhirhub.service.bundle_limits import BundleLimits
    from fhirhub.service.bundles import BundleService

    the_hub = hub()
    searcher = the_hub.search.search_for_bundle
    settings = the_hub.settings
    limits = partial(
        BundleLimits,
        settings.bundle_max_entries,
        settings.bundle_max_search_results,
        settings.bundle_timeout_ms,
    )
    bundles = BundleService(the_hub.resources, _base(), searcher, limits)
    return fhir_response(bundles.process(resource_body()), 200)
