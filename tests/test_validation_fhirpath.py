"""The invariant engine: the native FHIRPath subset, the fhirpathpy fallback, the skip list."""

from __future__ import annotations

from typing import Any

import pytest

from fhirhub.fhir.definitions import Definitions
from fhirhub.fhir.validation import ResourceValidator, invariants
from fhirhub.fhir.validation.fhirpath import Compiler, Env
from fhirhub.fhir.validation.model import COMPLEX, INLINE, PRIMITIVE, Constraint, TypeNode


@pytest.fixture(scope="module")
def validator(definitions: Definitions) -> ResourceValidator:
    return ResourceValidator(definitions)


def run(validator: ResourceValidator, expression: str, value: Any, ctx: str | None = None) -> Any:
    node = validator.models.resource(ctx) if ctx else None
    fn = Compiler(validator.models).compile(expression, node)
    return fn([value], Env(value, value, value))


@pytest.mark.parametrize(
    ("expression", "value", "expected"),
    [
        ("a.exists() and b.empty()", {"a": 1}, [True]),
        ("a.exists() and b.empty()", {"a": 1, "b": 2}, [False]),
        ("a = 'x' or b = 'y'", {"b": "y"}, [True]),
        ("a = 'x' or b = 'y'", {}, []),  # unknown or unknown
        ("a = 'x' implies b.exists()", {}, []),
        ("a = 'x' implies b.exists()", {"a": "z"}, [True]),
        ("a.exists() xor b.exists()", {"a": 1, "b": 1}, [False]),
        ("(a | b).count()", {"a": ["x", "y"], "b": "x"}, [2]),
        ("a in ('p' | 'q')", {"a": "q"}, [True]),
        ("a.where($this > 1).count()", {"a": [1, 2, 3]}, [2]),
        ("a.all($this > 0)", {"a": [1, 2]}, [True]),
        ("a.select(b).first()", {"a": [{"b": 1}, {"b": 2}]}, [1]),
        ("'#' + id", {"id": "x"}, ["#x"]),
        ("a & b", {"a": "x"}, ["x"]),
        ("a.matches('[a-z]+')", {"a": "abc1"}, [False]),  # whole-string, as in Java
        ("a.startsWith('ab')", {"a": "abc"}, [True]),
        ("a.toInteger() >= 2", {"a": "3"}, [True]),
        ("a.isDistinct()", {"a": [1, 2, 1]}, [False]),
        ("a.hasValue()", {"_a": {"extension": [{"url": "u", "valueString": "v"}]}}, [False]),
        ("a.exists()", {"_a": {"extension": [{"url": "u", "valueString": "v"}]}}, [True]),
        ("iif(a.exists(), 'y', 'n')", {}, ["n"]),
        ("%resource.id", {"id": "r1"}, ["r1"]),
        ("s <= e", {"s": "2020-01-01T10:00:00+02:00", "e": "2020-01-01T08:30:00Z"}, [True]),
        ("s <= e", {"s": "2020-02", "e": "2020-01-15"}, [False]),
        ("s <= e", {"s": "2020", "e": "2020-05-01"}, []),  # precision differs: unknown
        ("q1 < q2", {"q1": {"value": 1, "code": "mg"}, "q2": {"value": 2, "code": "mg"}}, [True]),
        ("q1 < q2", {"q1": {"value": 1, "code": "mg"}, "q2": {"value": 2, "code": "g"}}, []),
    ],
)
def test_native_semantics(
    validator: ResourceValidator, expression: str, value: Any, expected: list[Any]
) -> None:
    assert run(validator, expression, value) == expected


def test_choice_names_resolve_through_the_model(validator: ResourceValidator) -> None:
    obs = {"resourceType": "Observation", "valueQuantity": {"value": 1}}
    assert run(validator, "value.exists()", obs, "Observation") == [True]
    assert run(validator, "value is Quantity", obs, "Observation") == [True]
    assert run(validator, "value is string", obs, "Observation") == [False]
    assert run(validator, "(value as Quantity).value", obs, "Observation") == [1]
    assert run(validator, "Observation.value.exists()", obs, "Observation") == [True]


def test_resolve_gives_types_of_literal_references(validator: ResourceValidator) -> None:
    value = {"m": [{"reference": "Practitioner/1"}, {"reference": "urn:uuid:x"}]}
    assert run(validator, "m.resolve().ofType(Practitioner).count()", value) == [1]


def _every_constraint(validator: ResourceValidator) -> int:
    """Compile every invariant of every core type, as validation would on first use."""
    seen: set[int] = set()
    count = 0

    def visit(node: TypeNode) -> None:
        nonlocal count
        if id(node) in seen:
            return
        seen.add(id(node))
        for c in node.constraints:
            validator.invariants.runner(c, node, node.path)
            count += 1
        for slot in node.slots.values():
            complex_slot = slot.kind in (COMPLEX, INLINE)
            for c in slot.element.constraints:
                plain = slot.element.choice or slot.kind == PRIMITIVE
                ctx = None if plain else validator.models.node_of(slot)
                validator.invariants.runner(c, ctx, slot.base_path)
                count += 1
            if complex_slot:
                visit(validator.models.node_of(slot))

    for name in validator.models.resource_types:
        node = validator.models.resource(name)
        assert node is not None
        visit(node)
    return count


def test_every_core_constraint_is_evaluable(validator: ResourceValidator) -> None:
    assert _every_constraint(validator) > 200
    core = {k: r for k, r in invariants.SKIPPED.items() if not k.startswith("zz-")}
    assert core == {}, core  # nothing needs skipping ...
    native_gaps = {k: r for k, r in invariants.FALLBACK.items() if not k.startswith("zz-")}
    assert native_gaps == {}  # ... and everything runs natively


def test_engine_gap_goes_to_the_skip_list(validator: ResourceValidator) -> None:
    c = Constraint({"key": "zz-1", "severity": "error", "human": "h", "expression": "a.bogus()"})
    runner = validator.invariants.runner(c, None, "Patient")
    assert runner({"a": 1}, Env({}, {})) is None
    assert "bogus()" in invariants.SKIPPED["zz-1: a.bogus()"]


def test_fhirpathpy_fallback(validator: ResourceValidator) -> None:
    c = Constraint(
        {"key": "zz-2", "severity": "error", "human": "h", "expression": "a.upper() = 'X'"}
    )
    runner = validator.invariants.runner(c, None, "Patient")
    assert runner({"a": "x"}, Env({}, {})) is True
    assert runner({"a": "y"}, Env({}, {})) is False
    assert "zz-2: a.upper() = 'X'" in invariants.FALLBACK


def test_bad_data_does_not_disable_an_invariant(validator: ResourceValidator) -> None:
    def encounter(period: dict[str, Any]) -> dict[str, Any]:
        return {"resourceType": "Encounter", "status": "finished", "class": {"code": "x"}} | {
            "period": period
        }

    first = validator.validate(encounter({"start": 2020, "end": "2020-01-01"}))
    assert [(i.code, i.expression[0]) for i in first if i.severity == "error"] == [
        ("value", "Encounter.period.start")
    ]
    later = validator.validate(encounter({"start": "2020-02-01", "end": "2020-01-01"}))
    assert ("invariant", "Encounter.period") in [(i.code, i.expression[0]) for i in later]
