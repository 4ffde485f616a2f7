"""Element trees compiled from the R4 core StructureDefinition snapshots (pure).

Each type becomes a TypeNode whose slots are keyed by JSON property name, so the validator
resolves `valueQuantity` or `_birthDate` with one dict lookup. Types are compiled on first
use and cached; complex children are resolved lazily so recursive types (Extension inside
Extension, Questionnaire.item inside itself) terminate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fhirhub.fhir.definitions import Definitions
from fhirhub.fhir.validation.primitives import Checker, checker_for

Json = dict[str, Any]

PRIMITIVE, COMPLEX, RESOURCE, INLINE = range(4)

SD_PREFIX = "http://hl7.org/fhir/StructureDefinition/"
SYSTEM_PREFIX = "http://hl7.org/fhirpath/System."
FHIR_TYPE_EXT = SD_PREFIX + "structuredefinition-fhir-type"
BEST_PRACTICE_EXT = SD_PREFIX + "elementdefinition-bestpractice"
_SYSTEM_TYPES = {"String": "string", "Boolean": "boolean", "Integer": "integer"}
_SYSTEM_TYPES |= {"Decimal": "decimal", "Date": "date", "DateTime": "dateTime", "Time": "time"}

# Primitive types whose '#id' values count as references to contained resources (dom-3).
LOCAL_REF_TYPES = frozenset({"canonical", "uri", "url"})

# Checked natively (walker.py, domain.py, references.py, xhtml.py): they apply to nearly every
# element or resource, or need what FHIRPath engines lack (htmlChecks(), broad descendants()).
NATIVE_CONSTRAINTS = frozenset(
    {"ele-1", "ext-1", "dom-2", "dom-3", "dom-4", "dom-5", "dom-6", "ref-1", "txt-1", "txt-2"}
)


class Constraint:
    """One FHIRPath invariant; `compiled` is filled in by the invariant engine on first use."""

    __slots__ = ("best_practice", "compiled", "expression", "human", "key", "severity")

    def __init__(self, raw: Json) -> None:
        self.key: str = raw["key"]
        self.severity: str = raw.get("severity", "error")
        self.human: str = raw.get("human", "")
        self.expression: str = raw.get("expression", "")
        self.best_practice = any(
            x.get("url") == BEST_PRACTICE_EXT and x.get("valueBoolean")
            for x in raw.get("extension", ())
        )
        self.compiled: Any = None


class Element:
    """One element definition; it owns one Slot per JSON key (several for choice types)."""

    __slots__ = ("choice", "constraints", "max", "min", "name", "path", "slots")

    def __init__(self, raw: Json, name: str) -> None:
        self.name = name  # FHIRPath name: 'value' for value[x]
        self.path: str = raw["path"]
        self.min: int = raw.get("min", 0)
        mx = raw.get("max", "*")
        self.max: int | None = None if mx == "*" else int(mx)
        self.choice = raw["path"].endswith("[x]")
        self.constraints: tuple[Constraint, ...] = ()
        self.slots: list[Slot] = []


class Slot:
    """One JSON property of an element, with everything needed to check its values."""

    __slots__ = (
        "base_path",
        "binding",
        "check",
        "code",
        "element",
        "is_array",
        "key",
        "kind",
        "max",
        "node",
        "profile",
        "simple",
        "targets",
    )

    def __init__(self, element: Element, key: str, code: str, kind: int, is_array: bool) -> None:
        self.element = element
        self.key = key
        self.code = code  # type code: 'string', 'HumanName', 'BackboneElement', 'Resource', ...
        self.kind = kind
        self.is_array = is_array
        self.max = element.max
        self.profile: str | None = None
        self.node: TypeNode | None = None  # COMPLEX: resolved lazily; INLINE: set when built
        self.binding: str | None = None  # required-binding ValueSet URL
        self.targets: frozenset[str] | None = None  # Reference target types (None: any)
        self.base_path = code  # FHIRPath type context for element-level constraints
        self.check: Checker = checker_for(code)  # used for PRIMITIVE slots only
        self.simple = False  # PRIMITIVE needing nothing beyond `check` (the walker's fast path)


class TypeNode:
    """A resource, complex datatype or BackboneElement: its children by JSON key."""

    __slots__ = (
        "by_name",
        "choices",
        "constraints",
        "is_domain_resource",
        "is_resource",
        "name",
        "path",
        "required",
        "slots",
    )

    def __init__(self, name: str, path: str) -> None:
        self.name = name  # type name ('Patient', 'Quantity'; backbone: 'BackboneElement')
        self.path = path  # definition path, the FHIRPath type context ('Patient.contact')
        self.slots: dict[str, Slot] = {}
        self.by_name: dict[str, Element] = {}
        self.required: list[tuple[Element, tuple[str, ...]]] = []  # min > 0, keys that count
        self.choices: list[tuple[Element, frozenset[str]]] = []
        self.constraints: tuple[Constraint, ...] = ()
        self.is_resource = False
        self.is_domain_resource = False


def _constraints(raw: Json) -> tuple[Constraint, ...]:
    return tuple(
        Constraint(c)
        for c in raw.get("constraint", ())
        if c.get("key") not in NATIVE_CONSTRAINTS and c.get("expression")
    )


def _type_code(t: Json, raw: Json) -> str:
    code: str = t["code"]
    if code.startswith(SYSTEM_PREFIX):
        for ext in t.get("extension", ()):
            if ext.get("url") == FHIR_TYPE_EXT:
                code = ext.get("valueUrl") or ext.get("valueUri") or code
                break
        else:
            code = _SYSTEM_TYPES.get(code[len(SYSTEM_PREFIX) :], "string")
    if raw.get("base", {}).get("path") == "Resource.id":
        return "id"  # the 4.0.1 snapshots say System.String, but a logical id is an id
    return code


class ModelRegistry:
    """Compiles StructureDefinitions into TypeNodes on demand and caches them."""

    def __init__(self, definitions: Definitions) -> None:
        self._defs = definitions
        self._cache: dict[str, TypeNode] = {}  # datatypes, by name or profile URL
        self._resources: dict[str, TypeNode] = {}
        self.primitive_types = frozenset(
            name for name, sd in definitions.datatypes.items() if sd["kind"] == "primitive-type"
        )
        self.resource_types = frozenset(definitions.resource_types)

    def resource(self, name: str) -> TypeNode | None:
        node = self._resources.get(name)
        if node is None:
            sd = self._defs.resource_types.get(name)
            if sd is None:
                return None
            node = self._resources[name] = self._build(sd)
        return node

    def datatype(self, code: str, profile: str | None = None) -> TypeNode:
        key = profile or code
        node = self._cache.get(key)
        if node is None:
            sd = self._defs.structure_definitions.get(profile) if profile else None
            if sd is None:  # Element itself has no derivation, so it is not in .datatypes
                sd = (
                    self._defs.datatypes.get(code)
                    or self._defs.structure_definitions[SD_PREFIX + code]
                )
            node = self._cache[key] = self._build(sd)
        return node

    def node_of(self, slot: Slot) -> TypeNode:
        node = slot.node
        if node is None:
            node = slot.node = self.datatype(slot.code, slot.profile)
        return node

    def _build(self, sd: Json) -> TypeNode:
        elements = [
            e for e in sd["snapshot"]["element"] if "sliceName" not in e and ":" not in e["id"]
        ]
        children: dict[str, list[Json]] = {}
        for e in elements[1:]:
            children.setdefault(e["path"].rpartition(".")[0], []).append(e)
        inline: dict[str, TypeNode] = {}
        references: list[tuple[Slot, str]] = []

        def build(path: str, name: str, raw: Json) -> TypeNode:
            node = inline[path] = TypeNode(name, path)
            node.constraints = _constraints(raw)
            for child in children.get(path, ()):
                self._add_element(node, child, children, build, references)
            return node

        root = build(elements[0]["path"], sd["type"], elements[0])
        for slot, target in references:
            slot.node = inline[target.lstrip("#")]
            slot.base_path = slot.node.path
        if sd.get("kind") == "resource":
            root.is_resource = True
            root.is_domain_resource = "contained" in root.slots
        return root

    def _add_element(
        self,
        node: TypeNode,
        raw: Json,
        children: dict[str, list[Json]],
        build: Callable[[str, str, Json], TypeNode],
        references: list[tuple[Slot, str]],
    ) -> None:
        last = raw["path"].rpartition(".")[2]
        element = Element(raw, last.removesuffix("[x]"))
        base_max = raw.get("base", {}).get("max", raw.get("max", "*"))
        # JSON arrays follow the base definition, so a profile narrowing max to 1 keeps arrays
        is_array = base_max not in ("0", "1")
        binding = raw.get("binding") or {}
        vs = binding.get("valueSet") if binding.get("strength") == "required" else None
        own = _constraints(raw)
        if "contentReference" in raw:
            slot = Slot(element, element.name, "BackboneElement", INLINE, is_array)
            references.append((slot, raw["contentReference"]))
            element.constraints = own
            element.slots.append(slot)
        elif raw["path"] in children:
            slot = Slot(element, element.name, raw["type"][0]["code"], INLINE, is_array)
            slot.node = build(raw["path"], "BackboneElement", raw)
            element.slots.append(slot)
        else:
            element.constraints = own
            for t in raw.get("type", ()):
                code = _type_code(t, raw)
                key = element.name + code[0].upper() + code[1:] if element.choice else element.name
                if code in self.primitive_types:
                    kind = PRIMITIVE
                elif code == "Resource":
                    kind = RESOURCE
                else:
                    kind = COMPLEX
                slot = Slot(element, key, code, kind, is_array)
                slot.profile = (t.get("profile") or [None])[0]
                slot.binding = vs.partition("|")[0] if vs else None
                if code == "Reference":
                    targets = {p.rpartition("/")[2] for p in t.get("targetProfile", ())}
                    if targets and "Resource" not in targets:
                        slot.targets = frozenset(targets)
                if kind == PRIMITIVE:
                    slot.base_path = raw["path"]
                element.slots.append(slot)
        keys = tuple(s.key for s in element.slots)
        for slot in element.slots:
            node.slots[slot.key] = slot
            slot.simple = (
                slot.kind == PRIMITIVE
                and slot.binding is None
                and not element.constraints
                and slot.code not in LOCAL_REF_TYPES
            )
        node.by_name[element.name] = element
        if element.min > 0:
            companions = tuple("_" + k for k in keys if node.slots[k].kind == PRIMITIVE)
            node.required.append((element, keys + companions))
        if element.choice and len(keys) > 1:
            node.choices.append((element, frozenset(keys)))
