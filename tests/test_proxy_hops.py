"""FHIRHUB_PROXY_HOPS: forwarded client addresses are trusted only when configured."""

from __future__ import annotations

import pytest

from fhirhub.app import create_app
from fhirhub.auth.audit import COLLECTION
from fhirhub.hub import Hub

FORWARDED = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}


@pytest.mark.parametrize(("hops", "expected"), [(0, "127.0.0.1"), (1, "203.0.113.9")])
def test_client_address_in_audit(auth_hub: Hub, hops: int, expected: str) -> None:
    settings = auth_hub.settings.with_overrides(proxy_hops=hops)
    client = create_app(settings, auth_hub).test_client()
    # No token: refused, and the refusal is audited with the client's address.
    assert client.get("/fhir/Patient/x", headers=FORWARDED).status_code == 401
    auth_hub.audit.flush()
    addresses = [doc.get("addr") for doc in auth_hub.db[COLLECTION].find({})]
    assert addresses == [expected]
