"""Composition root: settings, definitions, database and services, built once per process."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import PyMongoError

from fhirhub.config import Settings
from fhirhub.embedded.fhir_package import package_dir
from fhirhub.fhir.capability import ResourceSupport, ServerSupport, capability_statement
from fhirhub.fhir.definitions import Definitions
from fhirhub.storage.mongo import connect

# Interactions the REST layer implements for every resource type; the CapabilityStatement
# is generated from these lists so it never claims more than the routes serve.
TYPE_INTERACTIONS: tuple[str, ...] = ()
SYSTEM_INTERACTIONS: tuple[str, ...] = ()


class Hub:
    def __init__(self, settings: Settings, client: MongoClient | None = None):
        self.settings = settings
        self.client = client or connect(settings)
        self.started = datetime.now(UTC).isoformat(timespec="seconds")

    @property
    def db(self) -> Database:
        return self.client[self.settings.db_name]

    @cached_property
    def definitions(self) -> Definitions:
        return Definitions(package_dir(self.settings.cache_dir))

    def database_problem(self) -> str | None:
        try:
            self.db.command("ping")
        except PyMongoError as exc:
            return str(exc).split("\n")[0][:200]
        return None

    @cached_property
    def _support(self) -> ServerSupport:
        resources: tuple[ResourceSupport, ...] = ()
        if TYPE_INTERACTIONS:
            resources = tuple(
                ResourceSupport(type=name, interactions=TYPE_INTERACTIONS)
                for name in sorted(self.definitions.resource_types)
            )
        return ServerSupport(resources=resources, system_interactions=SYSTEM_INTERACTIONS)

    def capability_statement(self) -> dict[str, Any]:
        return capability_statement(self.settings.fhir_base, self._support, self.started)

    def close(self) -> None:
        self.client.close()
