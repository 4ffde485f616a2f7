"""`make run`: a demo SMART app, a CLI client and an admin user, so a developer can get a
token for curl at once. Only with the embedded (development) database."""

from __future__ import annotations

import secrets

from fhirhub.auth.service import AuthService

DEMO_APP = "demo-app"
CLI_CLIENT = "fhirhub-cli"
DEMO_REDIRECTS = ["http://localhost:9000/callback", "http://127.0.0.1:9000/callback"]
DEMO_SCOPES = (
    "launch launch/patient openid fhirUser profile offline_access online_access "
    "patient/*.cruds user/*.cruds patient/*.read patient/*.write user/*.read user/*.write"
)
CLI_SCOPES = "user/*.cruds user/*.read user/*.write patient/*.cruds patient/*.read"


def ensure_demo(auth: AuthService) -> list[str]:
    """Register what is missing; returns lines to print (a new password is shown once)."""
    lines: list[str] = []
    if auth.store.client(DEMO_APP) is None:
        auth.register_client(
            DEMO_APP, "public", redirect_uris=DEMO_REDIRECTS, scope=DEMO_SCOPES, name="Demo app"
        )
    if auth.store.client(CLI_CLIENT) is None:
        auth.register_client(CLI_CLIENT, "public", redirect_uris=[], scope=CLI_SCOPES)
    if auth.store.user("admin") is None:
        password = secrets.token_urlsafe(12)
        auth.add_user("admin", password, admin=True)
        lines.append(f"SMART demo login: admin / {password} (shown once; `fhirhub user add`)")
    base = auth.settings.fhir_base
    lines += [
        f"SMART demo app: client_id={DEMO_APP}, redirect_uri={DEMO_REDIRECTS[0]}, "
        f"discovery {base}/.well-known/smart-configuration",
        "Token for curl:  TOKEN=$(.venv/bin/fhirhub token issue --user admin "
        "--scope 'user/*.cruds')",
        f'                 curl -H "Authorization: Bearer $TOKEN" {base}/Patient',
    ]
    return lines
