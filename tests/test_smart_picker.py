"""The patient picker: search by name or identifier, paging, escaping, and the rule that
only the user's own patients can be chosen whatever the form says."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask.testing import FlaskClient

from fhirhub.hub import Hub
from tests.auth_helpers import PASSWORD, authorize_params, clinical_data, pkce, register_app, url

SCOPE = "launch/patient user/*.rs"


def _picker(client: FlaskClient, hub: Hub, user: str) -> str:
    """Sign in up to the picker; returns the pending request id."""
    _, challenge = pkce()
    location = client.get(url("/auth/authorize", **authorize_params(hub, SCOPE, challenge)))
    request_id = parse_qs(urlsplit(location.headers["Location"]).query)["req"][0]
    form = {"req": request_id, "username": user, "password": PASSWORD}
    assert client.post("/auth/login", data=form).status_code == 303
    assert "/auth/pick" in client.get(f"/auth/next?req={request_id}").headers["Location"]
    return request_id


def _ids(page: str) -> list[str]:
    return re.findall(r'name="patient" value="([^"]+)"', page)


def _page(client: FlaskClient, request_id: str, **params: Any) -> str:
    response = client.get(url("/auth/pick", req=request_id, **params))
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _many_patients(hub: Hub, count: int = 45) -> None:
    for n in range(count):
        hub.resources.update(
            "Patient",
            f"p{n:02d}",
            {
                "resourceType": "Patient",
                "id": f"p{n:02d}",
                "name": [{"family": f"Family{n:02d}", "given": ["Test"]}],
                "identifier": [{"system": "urn:mrn", "value": f"MRN-{n:04d}"}],
            },
        )


def test_admin_searches_and_pages_through_all_patients(
    auth_client: FlaskClient, auth_hub: Hub
) -> None:
    clinical_data(auth_hub)
    register_app(auth_hub)
    _many_patients(auth_hub)
    request_id = _picker(auth_client, auth_hub, "root")
    first = _page(auth_client, request_id)
    assert len(_ids(first)) == 20 and "47 patients" in first
    assert 'id="next"' in first and 'id="previous"' not in first
    seen = set(_ids(first))
    offset = 0
    while 'id="next"' in (page := _page(auth_client, request_id, offset=offset)):
        offset += 20
        seen |= set(_ids(_page(auth_client, request_id, offset=offset)))
    assert len(seen) == 47 and 'id="previous"' in page  # every patient reachable, once
    by_name = _page(auth_client, request_id, q="family07")
    assert _ids(by_name) == ["p07"] and "1 patient matching" in by_name
    assert _ids(_page(auth_client, request_id, q="Alp")) == ["a"]
    by_mrn = _page(auth_client, request_id, q="MRN-0042", by="identifier")
    assert _ids(by_mrn) == ["p42"] and "MRN-0042" in by_mrn
    nothing = _page(auth_client, request_id, q="nobody-like-this")
    assert _ids(nothing) == [] and "No patient matches" in nothing
    # Choosing a patient from a later page works; an unknown id does not.
    chosen = auth_client.post("/auth/pick", data={"req": request_id, "patient": "p44"})
    assert chosen.status_code == 303 and "/auth/consent" in chosen.headers["Location"]
    bogus = auth_client.post("/auth/pick", data={"req": request_id, "patient": "zzz"})
    assert bogus.status_code == 400 and "Choose one of the listed patients" in bogus.text


def test_search_text_is_escaped_and_never_query_syntax(
    auth_client: FlaskClient, auth_hub: Hub
) -> None:
    clinical_data(auth_hub)
    register_app(auth_hub)
    request_id = _picker(auth_client, auth_hub, "root")
    attack = '"><script>alert(1)</script>'
    page = _page(auth_client, request_id, q=attack)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    # A comma would be an OR in FHIR search; here it is part of the name searched for.
    assert _ids(_page(auth_client, request_id, q="Alpha,Beta")) == []
    assert _ids(_page(auth_client, request_id, q="x&_id=b")) == []
    odd = _page(auth_client, request_id, q="a", by="<b>", offset="-5")
    assert "&lt;b&gt;" not in odd and "<b>" not in odd.split("<main>")[1].split("</form>")[0]


def test_practitioner_sees_and_picks_only_care_team_patients(
    auth_client: FlaskClient, auth_hub: Hub
) -> None:
    clinical_data(auth_hub)
    register_app(auth_hub)
    request_id = _picker(auth_client, auth_hub, "drheart")
    assert _ids(_page(auth_client, request_id)) == ["a"]
    assert _ids(_page(auth_client, request_id, q="Beta")) == []  # exists, not theirs
    forged = auth_client.post("/auth/pick", data={"req": request_id, "patient": "b"})
    assert forged.status_code == 400
