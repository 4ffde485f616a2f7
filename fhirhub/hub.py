"""Composition root: settings, definitions, database and services, built once per process."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import PyMongoError

from fhirhub.auth.discovery import capability_security
from fhirhub.config import Settings
from fhirhub.embedded.fhir_package import package_dir
from fhirhub.fhir.capability import ResourceSupport, ServerSupport, capability_statement
from fhirhub.fhir.definitions import Definitions
from fhirhub.fhir.search.extract import Extractor
from fhirhub.fhir.search.registry import SearchRegistry
from fhirhub.fhir.summary import Projector
from fhirhub.operations.registry import OperationRegistry
from fhirhub.reactions.registry import ReactionQueue, ReactionRegistry, reaction_kind
from fhirhub.service.access_grants import GrantRegistry, default_registry
from fhirhub.service.access_shares import ShareRegistry
from fhirhub.service.custom_parameters import CustomParameters
from fhirhub.service.resources import ResourceService, Validator, WriteHook
from fhirhub.service.search import SearchService
from fhirhub.service.write_guards import WriteGuard
from fhirhub.storage.deliveries import DeliveryStore
from fhirhub.storage.mongo import connect, connect_for_health
from fhirhub.storage.outbox import OutboxStore
from fhirhub.storage.search_store import SearchStore
from fhirhub.storage.store import ResourceStore
from fhirhub.storage.timers import TimerStore
from fhirhub.subscriptions.address_policy import AddressPolicy
from fhirhub.subscriptions.hooks import write_hooks
from fhirhub.subscriptions.status import SubscriberStatus
from fhirhub.timers.registry import TimerRegistry, Timers

if TYPE_CHECKING:
    from fhirhub.auth.audit import AuditLog
    from fhirhub.auth.service import AuthService
    from fhirhub.channels.service import Channels
    from fhirhub.medication.knowledge import Knowledge
    from fhirhub.medication.safety.hook import MedicationSafety

# Interactions the REST layer implements for every resource type; the CapabilityStatement
# is generated from these lists so it never claims more than the routes serve.
TYPE_INTERACTIONS: tuple[str, ...] = (
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
)
SYSTEM_INTERACTIONS: tuple[str, ...] = ("transaction", "batch", "history-system")


class Hub:
    def __init__(self, settings: Settings, client: MongoClient | None = None):
        self.settings = settings
        self.client = client or connect(settings)
        self.started = datetime.now(UTC).isoformat(timespec="seconds")
        self._domains_registered = False

    @property
    def db(self) -> Database:
        return self.client[self.settings.db_name]

    @cached_property
    def definitions(self) -> Definitions:
        return Definitions(package_dir(self.settings.cache_dir))

    @cached_property
    def store(self) -> ResourceStore:
        return ResourceStore(
            self.db, index_of=self.index_resource, budget_ms=self.settings.query_timeout_ms
        )

    @cached_property
    def validator(self) -> Validator:
        from fhirhub.fhir.validation import ResourceValidator

        return ResourceValidator(self.definitions)

    @cached_property
    def search_registry(self) -> SearchRegistry:
        return SearchRegistry(self.definitions)

    @cached_property
    def custom_parameters(self) -> CustomParameters:
        return CustomParameters(self.db, self.search_registry)

    def index_resource(self, resource: dict[str, Any]) -> dict[str, Any]:
        self.custom_parameters.maybe_refresh()
        return self.extractor.extract(resource)

    @cached_property
    def extractor(self) -> Extractor:
        return Extractor(self.definitions, self.search_registry, self.settings.fhir_base)

    @cached_property
    def search(self) -> SearchService:
        return SearchService(
            SearchStore(self.db, self.settings.query_timeout_ms),
            self.definitions,
            self.search_registry,
            self.extractor,
            self.projector,
            self.settings.fhir_base,
            before_search=self.custom_parameters.maybe_refresh,
        )

    @cached_property
    def resources(self) -> ResourceService:
        return ResourceService(
            self.store,
            self.definitions,
            self.validator,
            self.index_resource,
            self.search.find_versions,
            self.write_hooks,
            self.write_guards,
        )

    @cached_property
    def write_guards(self) -> dict[str, WriteGuard]:
        """Synchronous checks before writes commit (booking claims), by resource type."""
        guards: dict[str, WriteGuard] = {}
        self.__dict__["write_guards"] = guards
        self._register_domains()
        return guards

    def _register_domains(self) -> None:
        """Each domain package plugs its operations, write guards, reactions and timer
        kinds into the mechanisms. Runs once, when the first registry is asked for: the flag
        is set first because registering touches the registries itself."""
        if self._domains_registered:
            return
        self._domains_registered = True
        from fhirhub.coordination import wiring as coordination
        from fhirhub.medication import wiring as medication
        from fhirhub.monitoring import wiring as monitoring
        from fhirhub.scheduling import wiring as scheduling

        scheduling.register(self)
        coordination.register(self)
        medication.register(self)
        monitoring.register_operations(self, self.operations)
        monitoring.register_timers(self, self.timer_kinds)
        monitoring.register_reactions(self, self.reactions)
        from fhirhub.subscriptions.address_audit import address_audit

        self.reactions.register(address_audit(lambda record: self.audit.record_once(record)))

    @cached_property
    def write_hooks(self) -> dict[str, WriteHook]:
        policy = AddressPolicy.from_settings(self.settings)
        hooks = write_hooks(self.search, policy, self.store.current_resource)
        hooks["MedicationRequest"] = self.medication_safety
        return hooks

    @cached_property
    def medication_knowledge(self) -> Knowledge:
        """Drug tables (fhirhub/medication/knowledge/ plus the site's), via the database."""
        from fhirhub.medication.records import load

        site = self.settings.medication_knowledge_dir
        return load(self.db, Path(site) if site else None)

    @cached_property
    def medication_safety(self) -> MedicationSafety:
        from fhirhub.medication.safety.audit import override_recorder
        from fhirhub.medication.safety.hook import MedicationSafety, PatientContext

        refuse = frozenset(s.strip() for s in self.settings.medication_refuse.split(",") if s)
        return MedicationSafety(
            lambda: self.medication_knowledge,
            PatientContext(self.search.find_versions),
            refuse,
            override_recorder(lambda: self.audit),
        )

    @cached_property
    def subscriber_status(self) -> SubscriberStatus:
        return SubscriberStatus(self.resources, DeliveryStore(self.db))

    @cached_property
    def auth(self) -> AuthService:
        from fhirhub.auth.service import AuthService
        from fhirhub.storage.auth_store import AuthStore

        return AuthService(
            AuthStore(self.db, self.settings.auth_token_cache_ms / 1000),
            self.settings,
            self.search,
            self.extractor,
            self.definitions,
            self.access_grants,
            self.access_shares,
        )

    @cached_property
    def access_grants(self) -> GrantRegistry:
        """Access-granting types (CareTeam; domain packages register more, e.g. Consent)."""
        return default_registry()

    @cached_property
    def access_shares(self) -> ShareRegistry:
        """Narrower access than care teams give (referral Consents): domains register."""
        registry = ShareRegistry()
        self.__dict__["access_shares"] = registry
        self._register_domains()
        return registry

    @cached_property
    def audit(self) -> AuditLog:
        from fhirhub.auth.audit import AuditLog

        return AuditLog(self.db)

    @cached_property
    def projector(self) -> Projector:
        return Projector(self.definitions)

    @cached_property
    def health_client(self) -> MongoClient:
        return connect_for_health(self.settings)

    def database_problem(self) -> str | None:
        """None when the database answers a ping (through FerretDB, one that reaches
        PostgreSQL) within the health timeout; else what went wrong."""
        try:
            self.health_client[self.settings.db_name].command("ping")
        except PyMongoError as exc:
            return str(exc).split("\n")[0][:200]
        return None

    @cached_property
    def operations(self) -> OperationRegistry:
        """Custom FHIR operations: each domain package registers its own here."""
        registry = OperationRegistry(self.settings.fhir_base, self.started)
        self.__dict__["operations"] = registry
        self._register_domains()
        return registry

    @cached_property
    def timer_kinds(self) -> TimerRegistry:
        """Kinds of durable timer `fhirhub worker` runs: each domain package registers its
        own here."""
        kinds = TimerRegistry()
        self.__dict__["timer_kinds"] = kinds
        kinds.register(reaction_kind(self.reactions, OutboxStore(self.db)))
        self._register_domains()
        return kinds

    @cached_property
    def reactions(self) -> ReactionRegistry:
        """Handlers the worker runs on committed changes: domain packages register here."""
        registry = ReactionRegistry()
        self.__dict__["reactions"] = registry
        self._register_domains()
        return registry

    @cached_property
    def reaction_queue(self) -> ReactionQueue:
        return ReactionQueue(self.reactions, self.timers)

    @cached_property
    def timer_store(self) -> TimerStore:
        return TimerStore(self.db)

    @cached_property
    def timers(self) -> Timers:
        """Planning timer jobs by key (web requests and reactions alike)."""
        return Timers(self.timer_store, self.timer_kinds, on_planned=self._wake_timers)

    @cached_property
    def channels(self) -> Channels:
        """Outbound email, SMS and rest-hook, each message recorded as a Communication
        (used by the worker only)."""
        from fhirhub.channels.factory import build_channels
        from fhirhub.storage.outbound import OutboundStore

        def record(resource: dict[str, Any]) -> None:
            self.resources.update("Communication", str(resource["id"]), resource)

        def exists(communication_id: str) -> bool:
            stored = self.store.current("Communication", communication_id)
            return stored is not None and not stored.deleted

        return build_channels(self.settings, OutboundStore(self.db), record, exists)

    def _wake_timers(self) -> None:
        runner = self.__dict__.get("timer_runner")
        if runner is not None:
            runner.wake()

    @cached_property
    def _support(self) -> ServerSupport:
        resources: tuple[ResourceSupport, ...] = ()
        operations = self.operations.by_resource()
        if TYPE_INTERACTIONS:
            resources = tuple(
                ResourceSupport(
                    type=name,
                    interactions=TYPE_INTERACTIONS,
                    conditional_create=True,
                    conditional_update=True,
                    conditional_delete="single",
                    read_history=True,
                    update_create=True,
                    operations=operations.get(name, ()),
                )
                for name in sorted(self.definitions.resource_types)
            )
        return ServerSupport(
            resources=resources,
            system_interactions=SYSTEM_INTERACTIONS,
            operations=(
                ("validate", "http://hl7.org/fhir/OperationDefinition/Resource-validate"),
                *self.operations.system_level(),
            ),
            patch_formats=("application/json-patch+json", "application/fhir+json"),
            security=capability_security(self.settings) if self.settings.auth else None,
            websocket=self.settings.websocket_url,
        )

    def capability_statement(self) -> dict[str, Any]:
        return capability_statement(self.settings.fhir_base, self._support, self.started)

    def close(self) -> None:
        if "audit" in self.__dict__:
            self.audit.close()
        if "health_client" in self.__dict__:
            self.health_client.close()
        self.client.close()
