"""Thin views for search: type, compartment, POST _search, $everything."""

from __future__ import annotations

from flask import Blueprint, Response, request

from fhirhub.api.fhir.negotiation import SEARCH_BODY, check_request_mime
from fhirhub.api.fhir.render import fhir_response
from fhirhub.api.fhir.requests import hub
from fhirhub.fhir.errors import NotFound
from fhirhub.service import access
from fhirhub.service.everything import Everything

bp = Blueprint("search", __name__)

COMPARTMENTS = ("Patient", "Encounter", "RelatedPerson", "Practitioner", "Device")


def _strict() -> bool:
    return "handling=strict" in request.headers.get("Prefer", "").replace(" ", "")


def _search(
    resource_type: str, pairs: list[tuple[str, str]], compartment: str | None, self_path: str
) -> Response:
    the_hub = hub()
    the_hub.resources.check_type(resource_type)
    bundle = the_hub.search.search(
        resource_type, pairs, strict=_strict(), compartment=compartment, self_path=self_path
    )
    return fhir_response(bundle)


@bp.route("/<resource_type>", methods=["GET", "HEAD"])
def search_type(resource_type: str) -> Response:
    return _search(resource_type, list(request.args.items(multi=True)), None, resource_type)


@bp.post("/<resource_type>/_search")
def search_post(resource_type: str) -> Response:
    check_request_mime(request.headers.get("Content-Type"), SEARCH_BODY)
    pairs = list(request.args.items(multi=True)) + list(request.form.items(multi=True))
    return _search(resource_type, pairs, None, resource_type)


@bp.get("/<compartment>/<owner_id>/<resource_type>")
def search_compartment(compartment: str, owner_id: str, resource_type: str) -> Response:
    if compartment not in COMPARTMENTS:
        raise NotFound(f"{compartment} is not a compartment; no endpoint at {request.path}")
    the_hub = hub()
    the_hub.resources.check_id(owner_id)
    pairs = list(request.args.items(multi=True))
    return _search(
        resource_type,
        pairs,
        f"{compartment}/{owner_id}",
        f"{compartment}/{owner_id}/{resource_type}",
    )


def _everything(compartment: str, owner_id: str | None) -> Response:
    the_hub = hub()
    if owner_id is not None:
        the_hub.resources.check_id(owner_id)
    runner = Everything(
        the_hub.search.store, set(the_hub.definitions.resource_types), the_hub.settings.fhir_base
    )
    path = f"{compartment}/{owner_id}/$everything" if owner_id else f"{compartment}/$everything"
    if owner_id is not None and access.active() is not None:
        the_hub.resources.read(compartment, owner_id)  # the owner itself must be readable
    else:
        access.guard_read(compartment)
    visible = access.visibility_filter(the_hub.definitions.resource_types)
    bundle = runner.run(compartment, owner_id, request.args.to_dict(), path, visible)
    return fhir_response(access.restrict_includes(bundle))


@bp.get("/Patient/<owner_id>/$everything")
def patient_everything(owner_id: str) -> Response:
    return _everything("Patient", owner_id)


@bp.get("/Patient/$everything")
def all_patients_everything() -> Response:
    return _everything("Patient", None)


@bp.get("/Encounter/<owner_id>/$everything")
def encounter_everything(owner_id: str) -> Response:
    return _everything("Encounter", owner_id)
