"""CDS Hooks 2.0 client authentication with authorization on: an EHR written here signs
each call's JWT (joserfc, not the server's authlib) with its ES384 key; the service checks
signature, iss, aud, exp, jti and jku against the configured trusted clients, and reads
this server only with the call's fhirAuthorization token."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import ECKey

from fhirhub.app import create_app
from fhirhub.config import Settings
from fhirhub.fhir.definitions import Definitions
from fhirhub.hub import Hub
from tests.auth_helpers import assertion, asymmetric_client
from tests.conftest import _close_auth_hub
from tests.helpers import body
from tests.medication_support import order

ISS = "https://ehr.example.org"
JKU = "https://ehr.example.org/.well-known/jwks.json"
SERVICE = "/cds-services/medication-order-sign"
AUD = f"http://testserver{SERVICE}"
EHR_KEY = ECKey.generate_key("P-384", parameters={"kid": "ehr-1"}, private=True)
OTHER_KEY = ECKey.generate_key("P-384", parameters={"kid": "ehr-1"}, private=True)


@pytest.fixture
def trust_hub(settings: Settings, definitions: Definitions) -> Iterator[Hub]:
    clients = [
        {
            "iss": ISS,
            "sub": "ehr-client",
            "jwks": {"keys": [{**EHR_KEY.as_dict(private=False), "alg": "ES384"}]},
            "jku": [JKU],
        }
    ]
    hub = Hub(
        settings.with_overrides(
            auth=True, base_url="http://testserver/fhir", cds_clients=json.dumps(clients)
        )
    )
    hub.__dict__["definitions"] = definitions
    try:
        yield hub
    finally:
        _close_auth_hub(hub)


@pytest.fixture
def ehr(trust_hub: Hub) -> FlaskClient:
    return create_app(trust_hub.settings, trust_hub).test_client()


def signed(
    key: Any = EHR_KEY, alg: str = "ES384", header: dict | None = None, **claims: Any
) -> str:
    now = int(time.time())
    payload = {
        "iss": ISS,
        "sub": "ehr-client",
        "aud": AUD,
        "exp": now + 120,
        "iat": now,
        "jti": secrets.token_hex(16),
        **claims,
    }
    return jwt.encode(
        {"alg": alg, "kid": "ehr-1", "typ": "JWT", **(header or {})}, payload, key, algorithms=[alg]
    )


def call(client: FlaskClient, token: str | None, **extra: Any) -> Any:
    pid = "p1"
    warfarin = {**order(f"Patient/{pid}", "855332", "Warfarin Sodium 5 MG Oral Tablet"), "id": "w"}
    draft = {
        **order(f"Patient/{pid}", "310965", "Ibuprofen 200 MG Oral Tablet", status="draft"),
        "id": "d1",
    }
    request = {
        "hook": "order-sign",
        "hookInstance": str(uuid.uuid4()),
        "fhirServer": "http://testserver/fhir",
        "context": {
            "userId": "Practitioner/example",
            "patientId": pid,
            "draftOrders": {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": draft}],
            },
        },
        "prefetch": {
            "patient": {"resourceType": "Patient", "id": pid},
            "medications": {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [{"resource": warfarin}],
            },
            "statements": {"resourceType": "Bundle", "type": "searchset"},
            "allergies": {"resourceType": "Bundle", "type": "searchset"},
        },
        **extra,
    }
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post(SERVICE, json=request, headers=headers)


def test_a_signed_call_is_answered_and_its_jwt_cannot_be_replayed(ehr: FlaskClient) -> None:
    token = signed(header={"jku": JKU})
    response = call(ehr, token)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "critical" in [c["indicator"] for c in body(response)["cards"]]
    replay = call(ehr, token)
    assert replay.status_code == 401 and "replay" in replay.get_data(as_text=True)


# Tokens are made when the test runs: made at collection, they would have expired by the
# time a long suite reaches them.
WRONG: list[tuple[Callable[[], str | None], str]] = [
    (lambda: None, "needs Authorization"),
    (lambda: signed(aud="http://testserver/cds-services/medication-patient-view"), "aud must be"),
    (lambda: signed(exp=int(time.time()) - 120), "expired"),
    (lambda: signed(exp=int(time.time()) + 3600), "five minutes"),
    (lambda: signed(key=OTHER_KEY), "signature"),
    (lambda: signed(header={"jku": "https://attacker.example/jwks.json"}), "jku"),
    (lambda: signed(sub="someone-else"), "sub"),
    (lambda: signed(jti=""), "jti"),
    (lambda: "not-a-jwt", "access token is invalid"),
]


@pytest.mark.parametrize(("make", "words"), WRONG)
def test_unsigned_or_wrong_calls_are_401(
    ehr: FlaskClient, make: Callable[[], str | None], words: str
) -> None:
    response = call(ehr, make())
    assert response.status_code == 401, response.get_data(as_text=True)
    assert words in response.get_data(as_text=True)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_discovery_is_open(ehr: FlaskClient) -> None:
    assert ehr.get("/cds-services").status_code == 200


def test_reads_of_this_server_need_fhir_authorization(ehr: FlaskClient, trust_hub: Hub) -> None:
    trust_hub.resources.update("Patient", "p1", {"resourceType": "Patient", "id": "p1"})
    trust_hub.resources.create("MedicationRequest", order("Patient/p1", "855332", "Warfarin"))
    missing = call(ehr, signed(), prefetch={})
    assert missing.status_code == 412 and "fhirAuthorization" in missing.get_data(as_text=True)
    key = asymmetric_client(trust_hub, "cds-backend", "RS384")
    token_url = f"{trust_hub.settings.auth_base}/token"
    issued = ehr.post(
        urlsplit(token_url).path,
        data={
            "grant_type": "client_credentials",
            "scope": "system/*.rs",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion(key, "cds-backend", token_url),
        },
    )
    assert issued.status_code == 200, issued.get_data(as_text=True)
    granted = {
        "access_token": issued.get_json()["access_token"],
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "system/*.rs",
        "subject": "cds-backend",
    }
    answered = call(ehr, signed(), prefetch={}, fhirAuthorization=granted)
    assert answered.status_code == 200, answered.get_data(as_text=True)
    # The warfarin order on file was read with the granted token: the interaction card.
    assert "critical" in [c["indicator"] for c in body(answered)["cards"]]
