"""FHIRPath functions of the native subset. Each builder takes the compiled arguments and
returns the function applied to an input collection; it raises Unsupported for an arity
it does not implement, so the expression falls back to fhirpathpy."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fhirhub.fhir.validation.fhirpath_ops import (
    Builder,
    Coll,
    Env,
    Fn,
    NoValue,
    Unsupported,
    distinct,
    fail,
    item_eq,
    truth,
)

_REGEX_CACHE: dict[str, re.Pattern[str]] = {}


def _arity(args: list[Fn], *allowed: int) -> None:
    if len(args) not in allowed:
        raise Unsupported(f"{len(args)} arguments")


def _single(items: Coll) -> Any:
    if len(items) > 1:
        fail("a single item was expected")
    return items[0] if items else None


def _string_arg(arg: Fn, focus: Coll, env: Env) -> str | None:
    value = _single(arg(focus, env))
    return value if type(value) is str else None


def _where(args: list[Fn]) -> Fn:
    _arity(args, 1)
    (crit,) = args
    return lambda focus, env: [i for i in focus if truth(crit([i], env)) is True]


def _select(args: list[Fn]) -> Fn:
    _arity(args, 1)
    (proj,) = args
    return lambda focus, env: [v for i in focus for v in proj([i], env)]


def _all(args: list[Fn]) -> Fn:
    _arity(args, 1)
    (crit,) = args
    return lambda focus, env: [all(truth(crit([i], env)) is True for i in focus)]


def _exists(args: list[Fn]) -> Fn:
    _arity(args, 0, 1)
    if not args:
        return lambda focus, env: [bool(focus)]
    crit = args[0]
    return lambda focus, env: [any(truth(crit([i], env)) is True for i in focus)]


def _simple(fn: Callable[[Coll], Coll]) -> Builder:
    def build(args: list[Fn]) -> Fn:
        _arity(args, 0)
        return lambda focus, env: fn(focus)

    return build


def _trace(args: list[Fn]) -> Fn:
    _arity(args, 1, 2)
    return lambda focus, env: focus


def _not(focus: Coll) -> Coll:
    t = truth(focus)
    return [] if t is None else [not t]


def _has_value(focus: Coll) -> Coll:
    return [len(focus) == 1 and type(focus[0]) not in (dict, NoValue)]


def _is_distinct(focus: Coll) -> Coll:
    return [len(distinct(focus)) == len(focus)]


def _to_integer(focus: Coll) -> Coll:
    v = _single(focus)
    if type(v) is int:
        return [v]
    if type(v) is bool:
        return [int(v)]
    if type(v) is str and re.fullmatch(r"[+-]?\d+", v):
        return [int(v)]
    return []


def _to_string(focus: Coll) -> Coll:
    v = _single(focus)
    if v is None or type(v) in (dict, NoValue):
        return []
    if type(v) is bool:
        return ["true" if v else "false"]
    return [str(v)]


def _string_test(test: Callable[[str, str], bool]) -> Builder:
    def build(args: list[Fn]) -> Fn:
        _arity(args, 1)
        (arg,) = args

        def fn(focus: Coll, env: Env) -> Coll:
            value = _single(focus)
            if type(value) is not str:
                return []
            other = _string_arg(arg, focus, env)
            return [] if other is None else [test(value, other)]

        return fn

    return build


def _full_match(value: str, pattern: str) -> bool:
    rx = _REGEX_CACHE.get(pattern)
    if rx is None:
        # The R4 reference validator applies matches() to the whole string (Java semantics).
        rx = _REGEX_CACHE[pattern] = re.compile(pattern, re.DOTALL)
    return rx.fullmatch(value) is not None


def _iif(args: list[Fn]) -> Fn:
    _arity(args, 2, 3)
    crit, then = args[0], args[1]
    other = args[2] if len(args) == 3 else None

    def fn(focus: Coll, env: Env) -> Coll:
        if truth(crit(focus, env)) is True:
            return then(focus, env)
        return other(focus, env) if other is not None else []

    return fn


def _with_other(combine: Callable[[Coll, Coll], Coll]) -> Builder:
    def build(args: list[Fn]) -> Fn:
        _arity(args, 1)
        (arg,) = args
        return lambda focus, env: combine(focus, arg(focus, env))

    return build


def _intersect(a: Coll, b: Coll) -> Coll:
    return distinct([x for x in a if any(item_eq(x, y) is True for y in b)])


def _replace_matches(args: list[Fn]) -> Fn:
    _arity(args, 2)
    pattern_arg, substitution_arg = args

    def fn(focus: Coll, env: Env) -> Coll:
        value = _single(focus)
        pattern = _string_arg(pattern_arg, focus, env)
        substitution = _string_arg(substitution_arg, focus, env)
        if type(value) is not str or pattern is None or substitution is None:
            return []
        # FHIRPath substitutions use Java's $1 group syntax
        return [re.sub(pattern, re.sub(r"\$(\d+)", r"\\g<\1>", substitution), value)]

    return fn


_LITERAL_REF = re.compile(r"(?:.*/)?([A-Z][A-Za-z]+)/([A-Za-z0-9\-\.]{1,64})(?:/_history/.*)?")


def _resolve(args: list[Fn]) -> Fn:
    """Contained resources for '#id'; for `Type/id` (relative or absolute) a stub carrying
    only the type and id, which is all a local validator can know and all that type tests
    such as ctm-1's ofType(Practitioner) need. Other references resolve to nothing."""
    _arity(args, 0)

    def fn(focus: Coll, env: Env) -> Coll:
        out: Coll = []
        for item in focus:
            ref = item.get("reference") if type(item) is dict else item
            if type(ref) is not str:
                continue
            if ref.startswith("#"):
                root = env.root if type(env.root) is dict else {}
                out.extend(
                    c
                    for c in root.get("contained") or ()
                    if type(c) is dict and c.get("id") == ref[1:]
                )
            elif m := _LITERAL_REF.fullmatch(ref):
                out.append({"resourceType": m.group(1), "id": m.group(2)})
        return out

    return fn


def _children(focus: Coll) -> Coll:
    out: Coll = []
    for item in focus:
        data = item.ext if type(item) is NoValue else item
        if type(data) is not dict:
            continue
        for key, value in data.items():
            if key == "resourceType" or key[0] == "_":
                continue
            if type(value) is list:
                out.extend(v for v in value if v is not None)
            else:
                out.append(value)
    return out


def _descendants(focus: Coll) -> Coll:
    out: Coll = []
    level = _children(focus)
    while level:
        out.extend(level)
        level = _children(level)
    return out


ITERATING: dict[str, Builder] = {
    "where": _where,
    "select": _select,
    "all": _all,
    "exists": _exists,
    "first": _simple(lambda c: c[:1]),
    "last": _simple(lambda c: c[-1:]),
    "tail": _simple(lambda c: c[1:]),
    "trace": _trace,
}

PLAIN: dict[str, Builder] = {
    "empty": _simple(lambda c: [not c]),
    "count": _simple(lambda c: [len(c)]),
    "not": _simple(_not),
    "hasValue": _simple(_has_value),
    "isDistinct": _simple(_is_distinct),
    "distinct": _simple(distinct),
    "toInteger": _simple(_to_integer),
    "toString": _simple(_to_string),
    "children": _simple(_children),
    "descendants": _simple(_descendants),
    "startsWith": _string_test(str.startswith),
    "endsWith": _string_test(str.endswith),
    "contains": _string_test(str.__contains__),
    "matches": _string_test(_full_match),
    "iif": _iif,
    "replaceMatches": _replace_matches,
    "resolve": _resolve,
    "intersect": _with_other(_intersect),
    "combine": _with_other(lambda a, b: a + b),
    "union": _with_other(lambda a, b: distinct(a + b)),
}
