"""Scope rules and password hashing as pure code (no database)."""

from __future__ import annotations

import pytest

from fhirhub.auth.passwords import hash_password, verify_password
from fhirhub.auth.scopes import ScopeError, Scopes, parse_rule


def test_v1_and_v2_scopes_parse_to_the_same_actions() -> None:
    v1, v2 = parse_rule("patient/Observation.read"), parse_rule("patient/Observation.rs")
    assert v1 is not None and v2 is not None
    assert v1.actions == v2.actions == frozenset("rs")
    write = parse_rule("user/*.write")
    assert write is not None and write.actions == frozenset("cud") and write.resource_type == "*"
    everything = parse_rule("system/*.*")
    assert everything is not None and everything.actions == frozenset("cruds")
    restricted = parse_rule("patient/Observation.rs?category=laboratory")
    assert restricted is not None and restricted.query == "category=laboratory"
    assert parse_rule("openid") is None and parse_rule("launch/patient") is None


@pytest.mark.parametrize(
    "bad",
    ["patient/Observation.sr", "user/Observation.x", "patient/Observation.read?category=x"],
)
def test_malformed_resource_scopes_are_errors(bad: str) -> None:
    with pytest.raises(ScopeError):
        parse_rule(bad)


def test_rules_cover_only_their_type_and_actions() -> None:
    scopes = Scopes.parse("patient/Observation.rs user/*.c openid")
    assert [r.text for r in scopes.for_action("Observation", "r")] == ["patient/Observation.rs"]
    assert scopes.for_action("Patient", "r") == []
    assert [r.text for r in scopes.for_action("Patient", "c")] == ["user/*.c"]
    assert scopes.for_action("Observation", "d") == []
    # no substring matching: "patient/Observation.rs" does not grant "Observation.r" elsewhere
    assert Scopes.parse("patient/ObservationDefinition.rs").for_action("Observation", "r") == []


def test_grants_are_bounded_by_what_is_allowed() -> None:
    allowed = Scopes.parse("patient/*.rs launch/patient openid")
    requested = Scopes.parse("patient/Observation.read patient/Patient.cruds openid profile")
    assert str(requested.granted_by(allowed)) == "patient/Observation.read openid"
    context_differs = Scopes.parse("user/Observation.rs").granted_by(allowed)
    assert context_differs.items == ()
    query = Scopes.parse("patient/Observation.rs?category=laboratory")
    assert query.within(allowed)
    assert not allowed.within(query)  # removing a restriction is a widening


def test_refresh_narrowing_and_consent_removal() -> None:
    granted = Scopes.parse("patient/Observation.rs patient/Patient.rs offline_access")
    assert Scopes.parse("patient/Observation.r").within(granted)
    assert not Scopes.parse("patient/Observation.rus").within(granted)
    assert not Scopes.parse("patient/*.rs").within(granted)
    kept = granted.without_types({"Observation"})
    assert str(kept) == "patient/Patient.rs offline_access"


def test_password_hashes_are_salted_scrypt() -> None:
    first, second = hash_password("s3cret"), hash_password("s3cret")
    assert first != second and first.startswith("scrypt$")
    assert verify_password("s3cret", first) and verify_password("s3cret", second)
    assert not verify_password("S3cret", first)
    assert not verify_password("s3cret", "md5$abc") and not verify_password("x", "garbage")
