"""JSON Schemas of CDS Hooks 2.0 requests (non-FHIR JSON, validated with jsonschema before
anything else reads them): the service request and the feedback body."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

from fhirhub.fhir.errors import BadRequest, Issue

BUNDLE = {
    "type": "object",
    "required": ["resourceType"],
    "properties": {
        "resourceType": {"const": "Bundle"},
        "entry": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"resource": {"type": "object", "required": ["resourceType"]}},
            },
        },
    },
}

REQUEST: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["hook", "hookInstance", "context"],
    "properties": {
        "hook": {"type": "string", "minLength": 1},
        "hookInstance": {"type": "string", "minLength": 1, "maxLength": 200},
        "fhirServer": {"type": "string", "format": "uri", "pattern": "^https?://"},
        "fhirAuthorization": {
            "type": "object",
            "required": ["access_token", "token_type", "expires_in", "scope", "subject"],
            "properties": {
                "access_token": {"type": "string"},
                "token_type": {"const": "Bearer"},
                "expires_in": {"type": "integer"},
                "scope": {"type": "string"},
                "subject": {"type": "string"},
            },
        },
        "context": {
            "type": "object",
            "required": ["userId", "patientId"],
            "properties": {
                "userId": {"type": "string", "minLength": 1},
                "patientId": {"type": "string", "pattern": "^[A-Za-z0-9\\-.]{1,64}$"},
                "encounterId": {"type": "string"},
                "draftOrders": BUNDLE,
                "medications": BUNDLE,
                "selections": {"type": "array", "items": {"type": "string"}},
            },
        },
        "prefetch": {"type": "object", "additionalProperties": {"type": ["object", "null"]}},
    },
}

HOOK_CONTEXT = {
    "order-sign": ["draftOrders"],
    "order-select": ["draftOrders", "selections"],
    "medication-prescribe": ["medications"],
    "patient-view": [],
}

FEEDBACK: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["feedback"],
    "properties": {
        "feedback": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["card", "outcome", "outcomeTimestamp"],
                "properties": {
                    "card": {"type": "string", "minLength": 1},
                    "outcome": {"enum": ["accepted", "overridden"]},
                    "outcomeTimestamp": {"type": "string"},
                    "acceptedSuggestions": {
                        "type": "array",
                        "items": {"type": "object", "required": ["id"]},
                    },
                    "overrideReason": {
                        "type": "object",
                        "properties": {
                            "reason": {"type": "object"},
                            "userComment": {"type": "string"},
                        },
                    },
                },
            },
        }
    },
}

_REQUEST = Draft202012Validator(REQUEST)
_FEEDBACK = Draft202012Validator(FEEDBACK)


def _check(validator: Draft202012Validator, body: Any, what: str) -> None:
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        issues = [
            Issue("structure", f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}")
            for e in errors[:20]
        ]
        raise BadRequest(f"invalid CDS Hooks {what}: {issues[0].diagnostics}", issues)


def validate_request(body: Any, hook: str) -> None:
    _check(_REQUEST, body, "request")
    if body["hook"] != hook:
        raise BadRequest(f"this service answers the {hook!r} hook, not {body['hook']!r}")
    missing = [k for k in HOOK_CONTEXT.get(hook, []) if k not in body["context"]]
    if missing:
        raise BadRequest(f"the {hook} context needs {', '.join(missing)}")


def validate_feedback(body: Any) -> None:
    _check(_FEEDBACK, body, "feedback")
