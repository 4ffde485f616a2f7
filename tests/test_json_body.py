from __future__ import annotations

import pytest

from fhirhub.fhir.errors import BadRequest
from fhirhub.fhir.json_body import MAX_DEPTH, parse_resource


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "empty"),
        (b"{", "malformed JSON"),
        (b"[1,2]", "JSON object"),
        (b'"x"', "JSON object"),
        (b'{"resourceType":"Patient","id":"a","id":"b"}', "duplicate"),
        (b'{"resourceType":"Patient","$where":"1"}', "illegal"),
        (b'{"resourceType":"Patient","a.b":1}', "illegal"),
        (b'{"resourceType":"Patient","x":NaN}', "not valid JSON"),
        (b'{"id":"x"}', "resourceType"),
        (b"\xff\xfe", "UTF-8"),
    ],
)
def test_rejects_bad_bodies(body: bytes, fragment: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_resource(body)
    assert fragment in info.value.diagnostics


def test_rejects_deep_nesting() -> None:
    body = (
        b'{"resourceType":"Patient","x":'
        + b'{"a":' * (MAX_DEPTH + 5)
        + b"1"
        + b"}" * (MAX_DEPTH + 6)
    )
    with pytest.raises(BadRequest, match="nested"):
        parse_resource(body)


def test_rejects_pathological_nesting_without_crashing() -> None:
    body = b'{"resourceType":"Patient","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(BadRequest):
        parse_resource(body)


def test_accepts_resource_with_bom() -> None:
    assert parse_resource('\ufeff{"resourceType":"Patient"}'.encode())["resourceType"] == "Patient"
