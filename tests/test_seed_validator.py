"""Cross-check with the project's own R4 validator: generated bundles must have no errors."""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest

from fhirhub.fhir.definitions import Definitions
from fhirhub.seed import DEFAULT_PATIENTS, generate_bundles

try:
    from fhirhub.fhir.validation import ResourceValidator
except ImportError as exc:  # the validator is developed alongside the seed generator
    ResourceValidator = None  # type: ignore[assignment,misc]
    UNAVAILABLE = f"fhirhub.fhir.validation is not importable yet: {exc}"
else:
    UNAVAILABLE = ""

ANCHOR = date(2025, 3, 14)


@pytest.mark.skipif(ResourceValidator is None, reason=UNAVAILABLE)
@pytest.mark.parametrize(("patients", "seed"), [(DEFAULT_PATIENTS, 42), (80, 2024)])
def test_generated_bundles_have_no_validation_errors(
    definitions: Definitions, patients: int, seed: int
) -> None:
    validator = ResourceValidator(definitions)
    errors: list[str] = []
    validated: Counter[str] = Counter()
    for bundle in generate_bundles(patients, seed=seed, anchor=ANCHOR):
        # Validating the Bundle walks every entry's resource as well.
        for issue in validator.validate(bundle, allow_conditional_refs=True):
            if issue.severity in ("error", "fatal"):
                errors.append(f"{issue.expression}: {issue.diagnostics}")
        validated.update(e["resource"]["resourceType"] for e in bundle["entry"])
    assert not errors, "\n".join(errors[:40])
    assert validated["Patient"] == patients and len(validated) == 15
