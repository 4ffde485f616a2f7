"""Loading generated seed data through the same transaction path as any client."""

from __future__ import annotations

import logging
import time
from datetime import date

from fhirhub.hub import Hub
from fhirhub.service.bundles import BundleService

log = logging.getLogger(__name__)


def load_seed(hub: Hub, patients: int, seed: int = 42, anchor: date | None = None) -> int:
    """Returns the number of resources written."""
    from fhirhub.seed import generate_bundles

    bundles = BundleService(hub.resources, hub.settings.fhir_base, hub.search.search_for_bundle)
    written = 0
    for bundle in generate_bundles(patients, seed=seed, anchor=anchor):
        response = bundles.process(bundle)
        written += sum(1 for e in response["entry"] if e["response"]["status"].startswith("201"))
    return written


def load_default_seed(hub: Hub) -> None:
    from fhirhub.seed import DEFAULT_PATIENTS

    started = time.monotonic()
    written = load_seed(hub, DEFAULT_PATIENTS)
    log.warning(
        "loaded seed data: %d resources for %d patients in %.1f s",
        written,
        DEFAULT_PATIENTS,
        time.monotonic() - started,
    )
