"""`Composition/[id]/$document` (R4 OperationDefinition Composition-document).

The caller must be able to read the Composition and every resource it references: each is
read through the request's access policy, and one that cannot be resolved (missing, or
hidden from the token, which answer alike) refuses the document with a 422 naming it, as
a document with holes would misrepresent the record. `persist=true` also stores the Bundle
(unrestricted tokens only: a Bundle lies outside every patient compartment, so a stored
copy must not be written by a confined token) and answers 201 with its Location.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from fhirhub.coordination.documents.bundle import document, wanted
from fhirhub.fhir.errors import FhirError, Forbidden, NotFound, Unprocessable
from fhirhub.operations.model import AccessRule, Call, Operation, Parameter, Result
from fhirhub.service import access
from fhirhub.service.resources import ResourceService

R4 = "http://hl7.org/fhir/OperationDefinition"
MAX_ENTRIES = 1000


class Documents:
    def __init__(self, resources: ResourceService, base: str, clock: Callable[[], datetime]):
        self.resources = resources
        self.base = base
        self.clock = clock

    def _read(self, reference: str) -> dict[str, Any] | None:
        kind, rid = reference.split("/")
        try:
            return self.resources.read(kind, rid).resource
        except (NotFound, Forbidden):
            return None
        except FhirError:
            return None  # an unknown type or a malformed id: cannot be resolved either

    def run(self, call: Call) -> Result:
        composition = self.resources.read("Composition", str(call.resource_id)).resource
        assert composition is not None
        refs = wanted(composition, self.base)
        if len(refs) > MAX_ENTRIES:
            raise Unprocessable(f"the Composition references more than {MAX_ENTRIES} resources")
        resolved, missing = [], []
        for ref in refs:
            found = self._read(ref)
            (resolved.append(found) if found is not None else missing.append(ref))
        if missing:
            raise Unprocessable(
                "the document cannot be assembled: these references cannot be resolved "
                "(they do not exist or the token may not read them): " + ", ".join(missing[:20])
            )
        bundle = document(composition, resolved, self.base, self.clock())
        persist = call.one("persist", False)
        if not persist:
            return Result(bundle)
        policy = access.active()
        if policy is not None and not policy.unrestricted():
            raise Forbidden(
                "persist=true stores a Bundle outside the patient's compartment: "
                "unrestricted (system or admin) tokens only"
            )
        stored = self.resources.create("Bundle", bundle).stored
        location = f"{self.base}/Bundle/{stored.resource_id}/_history/{stored.version}"
        return Result(stored.resource, 201, {"Location": location})


def declarations(documents: Documents) -> list[Operation]:
    return [
        Operation(
            code="document",
            id="Composition-document",
            title="Generate a Document",
            description="A document Bundle holding the Composition and every resource it "
            "references, with identifier and timestamp; persist=true stores it.",
            handler=documents.run,
            resource=("Composition",),
            levels=("instance",),
            parameters=(
                Parameter("persist", "boolean", documentation="store the Bundle (201)"),
                Parameter("graph", "uri", documentation="not supported: ignored"),
                Parameter("return", "Bundle", 1, "1", use="out"),
            ),
            access=AccessRule(types=("Composition",), actions="r", instance_read=True),
            based_on=f"{R4}/Composition-document",
        )
    ]
