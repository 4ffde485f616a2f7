"""Patient/$everything and Encounter/$everything: a compartment plus what it references."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fhirhub.fhir.dates import parse_period
from fhirhub.fhir.errors import BadRequest, NotFound
from fhirhub.fhir.references import iter_references
from fhirhub.fhir.search.extract import COMPARTMENT_FIELD
from fhirhub.fhir.search.keys import COMPARTMENT_CODE, REFERENCE_KEYS
from fhirhub.fhir.search.query import DEFAULT_COUNT, MAX_COUNT
from fhirhub.storage.documents import INDEX_PREFIX
from fhirhub.storage.search_store import Document, SearchStore

# The most members one $everything reads (beyond: too costly; narrow with _type or _since).
MAX_MEMBERS = 20_000


class Everything:
    def __init__(self, store: SearchStore, resource_types: set[str], base: str):
        self.store = store
        self.resource_types = resource_types
        self.base = base

    def run(
        self,
        compartment: str,
        owner_id: str | None,
        args: dict[str, str],
        self_path: str,
        visible: Document | None = None,
    ) -> dict[str, Any]:
        """`visible`: the access policy's database filter (None: no limit). Applied in the
        query, so pages are full and `total` (first page) counts what the caller may see."""
        count = (
            min(
                int(args["_count"]) if args.get("_count", "").isdigit() else DEFAULT_COUNT,
                MAX_COUNT,
            )
            or DEFAULT_COUNT
        )
        query: dict[str, Any] = {"del": False}
        if owner_id is None:
            query[INDEX_PREFIX + COMPARTMENT_FIELD] = {"$regex": f"^{compartment}/"}
        else:
            owner = self.store.by_keys([f"{compartment}/{owner_id}"])
            if not owner:
                raise NotFound(f"{compartment}/{owner_id} is not known")
            query[INDEX_PREFIX + COMPARTMENT_FIELD] = f"{compartment}/{owner_id}"
        types = [t for t in args.get("_type", "").split(",") if t]
        unknown = [t for t in types if t not in self.resource_types]
        if unknown:
            raise BadRequest(f"_type: unknown resource types {', '.join(unknown)}")
        if types:
            query["t"] = types[0] if len(types) == 1 else {"$in": types}
        if args.get("_since"):
            query["ts"] = {"$gte": parse_period(args["_since"], "_since")[0]}
        if visible is not None:
            query = {"$and": [query, visible]}
        cursor = args.get("_cursor", "")
        # A compartment is reached by its key (one equality); its members are few enough
        # to be read whole and put in order here.
        if owner_id is None:
            branches: list[Document] = [{}]
        else:
            member = f"{COMPARTMENT_CODE}={compartment}/{owner_id}"
            branches = [{REFERENCE_KEYS: member, **({"t": t} if t else {})} for t in types or [""]]
        matches = self.store.select(branches, query, MAX_MEMBERS)
        matches.sort(key=lambda d: str(d["_id"]))
        following = [d for d in matches if not cursor or str(d["_id"]) > cursor]
        docs = following[: count + 1]
        more = len(docs) > count
        docs = docs[:count]
        included = [d for d in self._referenced(docs) if not types or d["t"] in types]
        kept = [(k, v) for k, v in args.items() if k != "_cursor"]
        links = [{"relation": "self", "url": f"{self.base}/{self_path}?{urlencode(args)}"}]
        if more and docs:
            params = urlencode([*kept, ("_cursor", docs[-1]["_id"])])
            links.append({"relation": "next", "url": f"{self.base}/{self_path}?{params}"})
        entries = [self._entry(d, "match") for d in docs]
        entries += [self._entry(d, "include") for d in included]
        bundle: dict[str, Any] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "link": links,
            "entry": entries,
        }
        if not cursor:
            # On the first page only: a page that holds everything is its own count, else
            # one count query (later pages would repeat it for a number the client has).
            bundle["total"] = len(matches)
        return bundle

    def _referenced(self, docs: list[Document]) -> list[Document]:
        """Resources outside the compartment that page members point at (practitioners,
        organizations, medications, ...), once each."""
        present = {d["_id"] for d in docs}
        wanted: list[str] = []
        for doc in docs:
            for ref in iter_references(doc.get("res")):
                kind = ref.split("/")[0]
                if ref.count("/") == 1 and kind in self.resource_types and ref not in present:
                    wanted.append(ref)
        return self.store.by_keys(wanted)

    def _entry(self, doc: Document, mode: str) -> dict[str, Any]:
        return {
            "fullUrl": f"{self.base}/{doc['_id']}",
            "resource": doc["res"],
            "search": {"mode": mode},
        }
