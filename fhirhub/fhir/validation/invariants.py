"""FHIRPath invariants (ElementDefinition.constraint) from the core snapshots (pure).

Each constraint is compiled once, on first use, into a runner stored on the Constraint:
the native compiler (fhirpath.py) when the expression is inside its subset, else
fhirpathpy. A constraint that neither can evaluate is recorded in SKIPPED with the reason
and then ignored, so an engine gap never rejects a resource. ele-1, ext-1, dom-2..6,
ref-1 and txt-1/2 are checked natively by the walker and never reach this module.

Runners return True/False, or None when the result is empty ('unknown' in FHIRPath);
only False is a violation.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from fhirpathpy import apply_parsed_path
from fhirpathpy.engine.invocations import invocation_registry
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models
from fhirpathpy.parser import parse

from fhirhub.fhir.validation.fhirpath import Compiler, Env, EvalError, Unsupported
from fhirhub.fhir.validation.fhirpath_ops import truth
from fhirhub.fhir.validation.model import Constraint, ModelRegistry, TypeNode

Runner = Callable[[Any, Env], "bool | None"]

# "key: expression" -> why the constraint is not evaluated.
SKIPPED: dict[str, str] = {}
# "key: expression" -> why it is evaluated by fhirpathpy rather than natively.
FALLBACK: dict[str, str] = {}

_R4 = models["r4"]
_QUIET = {"traceFn": lambda label, value: None}


def _skip(value: Any, env: Env) -> bool | None:
    return None


def _functions(tree: dict[str, Any], out: set[str]) -> set[str]:
    if tree.get("type") == "Functn":
        out.add(tree["children"][0]["text"])
    for child in tree.get("children", ()):
        _functions(child, out)
    return out


def _fhirpathpy_runner(c: Constraint, base_path: str) -> Runner | str:
    """A runner using fhirpathpy, or the reason it cannot evaluate the expression."""
    try:
        tree = parse(c.expression)
    except Exception as exc:  # the ANTLR front end raises bare Exceptions
        return f"fhirpathpy cannot parse it: {exc}"
    missing = sorted(_functions(tree, set()) - set(invocation_registry))
    if missing:
        return f"uses {', '.join(m + '()' for m in missing)}, not implemented by fhirpathpy"

    def run(value: Any, env: Env) -> bool | None:
        node = ResourceNode.create_node(value, base_path)
        variables = {"resource": env.resource, "rootResource": env.root}
        return truth(apply_parsed_path(node, tree, variables, _R4, _QUIET))

    return run


class InvariantEngine:
    def __init__(self, models: ModelRegistry) -> None:
        self._compiler = Compiler(models)
        self._fallbacks: dict[tuple[str, str], Runner] = {}
        self._lock = threading.RLock()

    def runner(self, c: Constraint, ctx: TypeNode | None, base_path: str) -> Runner:
        """The cached runner for `c`, compiling it on first use."""
        run: Runner | None = c.compiled
        if run is None:
            with self._lock:  # the compiler keeps per-compilation state
                run = c.compiled
                if run is None:
                    run = c.compiled = self._prepare(c, ctx, base_path)
        return run

    def _prepare(self, c: Constraint, ctx: TypeNode | None, base_path: str) -> Runner:
        label = f"{c.key}: {c.expression}"
        try:
            native = self._compiler.compile(c.expression, ctx)
        except Unsupported as exc:
            fallback = _fhirpathpy_runner(c, base_path)
            if isinstance(fallback, str):
                SKIPPED[label] = f"{fallback} (native compiler: {exc})"
                return _skip
            FALLBACK[label] = str(exc)
            return self._guard(c, label, fallback, primary=True)

        def run(value: Any, env: Env) -> bool | None:
            try:
                return truth(native([value], env))
            except (EvalError, LookupError, TypeError, ValueError, AttributeError):
                # Outside what the native subset handles (or bad data): ask fhirpathpy.
                return self._second_opinion(c, label, base_path)(value, env)

        return run

    def _second_opinion(self, c: Constraint, label: str, base_path: str) -> Runner:
        fallback = self._fallbacks.get((label, base_path))
        if fallback is None:
            prepared = _fhirpathpy_runner(c, base_path)
            if isinstance(prepared, str):
                fallback = _skip
            else:
                fallback = self._guard(c, label, prepared, primary=False)
            self._fallbacks[(label, base_path)] = fallback
        return fallback

    def _guard(self, c: Constraint, label: str, run: Runner, primary: bool) -> Runner:
        """Evaluation errors mostly come from malformed data (already reported by the
        structural checks), so they make this one result unknown. Only an engine gap in
        the constraint's primary runner disables it for good."""

        def guarded(value: Any, env: Env) -> bool | None:
            try:
                return run(value, env)
            except Exception as exc:  # fhirpathpy raises bare Exceptions
                message = str(exc)
                gap = message.startswith("Not implemented") or message.endswith(" evaluator ")
                if gap and primary:
                    SKIPPED[label] = f"fhirpathpy: {message}"
                    c.compiled = _skip
                return None

        return guarded
