"""Declarations of custom operations (pure): parameters, levels, access, handler."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from fhirhub.fhir.errors import Forbidden

# FHIR data types that can be given in a URL query (operations.html#request): primitives,
# plus Reference ("Type/id") and string parameters searched as tokens ("system|code").
URL_TYPES = frozenset(
    {
        "string",
        "code",
        "id",
        "uri",
        "url",
        "canonical",
        "oid",
        "uuid",
        "markdown",
        "date",
        "dateTime",
        "instant",
        "time",
        "integer",
        "positiveInt",
        "unsignedInt",
        "decimal",
        "boolean",
        "Reference",
    }
)
PRIMITIVES = URL_TYPES - {"Reference"}
LEVELS = ("system", "type", "instance")


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str  # a FHIR data type or resource type ("Resource" for any)
    min: int = 0
    max: str = "1"  # "1", "2", ... or "*"
    documentation: str = ""
    use: str = "in"
    search_type: str | None = None  # e.g. "token" for a string given as system|code
    target_profile: tuple[str, ...] = ()

    @property
    def repeats(self) -> bool:
        return self.max == "*" or int(self.max) > 1

    def allows(self, count: int) -> bool:
        return self.max == "*" or count <= int(self.max)


class Policy(Protocol):
    """The parts of the request's access policy an access rule consults
    (fhirhub/service/access.py AccessPolicy, plus unrestricted())."""

    def check_type(self, resource_type: str, action: str) -> None: ...

    def unrestricted(self) -> bool: ...


@dataclass(frozen=True)
class AccessRule:
    """How the SMART access policy applies to an operation, checked before its handler.

    `types`: the token needs a scope allowing at least one of `actions` on each of these
    types (the handler's reads and writes then go through the services, which enforce the
    policy on every resource); `instance_read`: an instance-level call must be allowed to
    read that instance (a guarded read of it); `admin`: unrestricted tokens only."""

    types: tuple[str, ...] = ()
    actions: str = "rs"
    instance_read: bool = False
    admin: bool = False

    def check(self, policy: Policy, reader: Callable[[], object] | None) -> None:
        if self.admin and not policy.unrestricted():
            raise Forbidden("this operation needs unrestricted (admin) access")
        for resource_type in self.types:
            if not any(_allows(policy, resource_type, a) for a in self.actions):
                raise Forbidden(
                    f"the access token has no scope allowing this operation on {resource_type}"
                )
        if self.instance_read and reader is not None:
            reader()


def _allows(policy: Policy, resource_type: str, action: str) -> bool:
    try:
        policy.check_type(resource_type, action)
    except Forbidden:
        return False
    return True


@dataclass
class Call:
    """One invocation: where it was made and its parsed input parameters."""

    operation: Operation
    resource_type: str | None
    resource_id: str | None
    method: str
    params: dict[str, list[Any]]
    base: str

    def one(self, name: str, default: Any = None) -> Any:
        values = self.params.get(name)
        return values[0] if values else default

    def all(self, name: str) -> list[Any]:
        return list(self.params.get(name, []))

    def has(self, name: str) -> bool:
        return bool(self.params.get(name))


@dataclass
class Result:
    """What a handler answers: a resource (the single `return`), or a status and body."""

    body: dict[str, Any] | None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Call], "Result | dict[str, Any]"]


@dataclass(frozen=True)
class Operation:
    code: str  # the name after `$`
    id: str  # OperationDefinition id
    title: str
    description: str
    handler: Handler
    resource: tuple[str, ...] = ()  # resource types; empty for a system-level operation
    levels: tuple[str, ...] = ("type",)
    parameters: tuple[Parameter, ...] = ()
    affects_state: bool = False  # True: POST only (operations.html "affectsState")
    access: AccessRule = field(default_factory=AccessRule)
    # Based on a published definition (e.g. IHE ITI Scheduling): its canonical URL.
    based_on: str | None = None
    # A POST body that is a resource of this parameter's type (not Parameters) is taken
    # as that parameter, as R4 allows for single-resource inputs.
    body_parameter: str | None = None

    def __post_init__(self) -> None:
        unknown = set(self.levels) - set(LEVELS)
        if unknown or not self.levels:
            raise ValueError(f"${self.code}: levels must be among {LEVELS}, got {self.levels}")
        if {"type", "instance"} & set(self.levels) and not self.resource:
            raise ValueError(f"${self.code}: type/instance operations need resource types")
        names = [p.name for p in self.parameters if p.use == "in"]
        if len(names) != len(set(names)):
            raise ValueError(f"${self.code}: duplicate input parameter names")

    def inputs(self) -> dict[str, Parameter]:
        return {p.name: p for p in self.parameters if p.use == "in"}
