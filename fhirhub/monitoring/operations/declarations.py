"""Observation/$lastn and Observation/$stats declared in the operations registry.

Both search through the search service (so the token's access applies to every
Observation) and bound what they read: more than MAX_READ matching Observations is a
400 too-costly asking for a narrower date range.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from fhirhub.fhir.errors import BadRequest, TooCostly
from fhirhub.monitoring.context import Context
from fhirhub.monitoring.operations.statistics import SUPPORTED, lastn, stats
from fhirhub.operations.model import AccessRule, Call, Operation, Parameter, Result
from fhirhub.storage.store import fhir_instant

MAX_READ = 5000
R4 = "http://hl7.org/fhir/OperationDefinition"
READ_OBSERVATIONS = AccessRule(types=("Observation",), actions="s")


def _find(context: Context, pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    found = context.search.find_resources("Observation", urlencode(pairs), MAX_READ + 1)
    if len(found) > MAX_READ:
        raise TooCostly(
            f"more than {MAX_READ} Observations match; narrow the query (date, code, period)"
        )
    return found


def _ref(value: Any) -> str:
    return str(value.get("reference") if isinstance(value, dict) else value)


def run_lastn(context: Context, call: Call) -> Result:
    subject = call.one("patient") or call.one("subject")
    if subject is None:
        raise BadRequest("$lastn needs a patient or subject")
    if not call.has("category") and not call.has("code"):
        raise BadRequest("$lastn needs a category or a code")
    name = "patient" if call.has("patient") else "subject"
    pairs = [(name, _ref(subject))]
    for param in ("category", "code", "date"):
        pairs += [(param, str(v)) for v in call.all(param)]
    latest = lastn(_find(context, pairs), int(call.one("max", 1)))
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(latest),
        "entry": [
            {
                "fullUrl": f"{call.base}/Observation/{o['id']}",
                "resource": o,
                "search": {"mode": "match"},
            }
            for o in latest
        ],
    }
    return Result(bundle)


def run_stats(context: Context, call: Call) -> Result:
    subject = str(call.one("subject"))
    system = call.one("system")
    codes = [f"{system}|{c}" if system else str(c) for c in call.all("code")]
    codes += [f"{c.get('system', '')}|{c.get('code', '')}" for c in call.all("coding")]
    if not codes:
        raise BadRequest("$stats needs a code (with system) or a coding")
    pairs = [("subject", subject), ("code", ",".join(codes))]
    period: dict[str, str] = dict(call.one("period") or {})
    if call.has("duration"):
        if period:
            raise BadRequest("$stats takes a duration or a period, not both")
        hours = float(call.one("duration"))
        if hours <= 0:
            raise BadRequest("duration must be a positive number of hours")
        now = context.clock()
        period = {"start": fhir_instant(now - timedelta(hours=hours)), "end": fhir_instant(now)}
    if period.get("start"):
        pairs.append(("date", "ge" + period["start"]))
    if period.get("end"):
        pairs.append(("date", "le" + period["end"]))
    observations = _find(context, pairs)
    wanted = [str(s) for s in call.all("statistic")]
    results = stats(observations, wanted, subject, period)
    parameters: list[dict[str, Any]] = [{"name": "statistic", "resource": r} for r in results]
    if call.one("include") is True:
        parameters += [{"name": "source", "resource": o} for o in observations]
    return Result({"resourceType": "Parameters", "parameter": parameters})


def operations(context: Callable[[], Context]) -> list[Operation]:
    return [
        Operation(
            code="lastn",
            id="Observation-lastn",
            title="Last N Observations Query",
            description="The latest `max` Observations (default 1) per code for a patient.",
            handler=lambda call: run_lastn(context(), call),
            resource=("Observation",),
            parameters=(
                Parameter("max", "positiveInt", documentation="how many per code (default 1)"),
                Parameter("patient", "Reference"),
                Parameter("subject", "Reference"),
                Parameter("category", "string", 0, "*", search_type="token"),
                Parameter("code", "string", 0, "*", search_type="token"),
                Parameter("date", "string", 0, "*", documentation="date search values"),
                Parameter("return", "Bundle", 1, "1", use="out"),
            ),
            access=READ_OBSERVATIONS,
            based_on=f"{R4}/Observation-lastn",
        ),
        Operation(
            code="stats",
            id="Observation-stats",
            title="Observation Statistics",
            description="Statistics over a subject's Observations of given codes and time.",
            handler=lambda call: run_stats(context(), call),
            resource=("Observation",),
            parameters=(
                Parameter("subject", "uri", 1, "1"),
                Parameter("code", "string", 0, "*"),
                Parameter("system", "uri"),
                Parameter("coding", "Coding", 0, "*"),
                Parameter("duration", "decimal", documentation="hours before now"),
                Parameter("period", "Period"),
                Parameter(
                    "statistic", "code", 1, "*", documentation="one of " + ", ".join(SUPPORTED)
                ),
                Parameter("include", "boolean"),
                Parameter("statistic", "Observation", 0, "*", use="out"),
                Parameter("source", "Observation", 0, "*", use="out"),
            ),
            access=READ_OBSERVATIONS,
            based_on=f"{R4}/Observation-stats",
        ),
    ]
