"""Runtime semantics for the native FHIRPath subset: collections, operators, functions.

Collections are plain lists of JSON values; a primitive that carries only extensions is
a NoValue. Three-valued logic follows the FHIRPath spec ([] is 'unknown').
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, NoReturn

import orjson

Coll = list[Any]


class Env:
    """%resource, %rootResource and %context for one evaluation."""

    __slots__ = ("context", "resource", "root")

    def __init__(self, resource: Any, root: Any, context: Any = None) -> None:
        self.resource = resource
        self.root = root
        self.context = context


Fn = Callable[[Coll, Env], Coll]
Builder = Callable[[list[Fn]], Fn]


class Unsupported(Exception):
    pass


class EvalError(Exception):
    pass


class NoValue:
    __slots__ = ("ext",)

    def __init__(self, ext: dict[str, Any]) -> None:
        self.ext = ext


def fail(message: str) -> NoReturn:
    raise EvalError(message)


def truth(c: Coll) -> bool | None:
    if not c:
        return None
    if len(c) == 1:
        v = c[0]
        return v if type(v) is bool else True
    fail("a boolean was expected but the collection has several items")


def _is_num(v: Any) -> bool:
    return type(v) is int or type(v) is float


def item_eq(x: Any, y: Any) -> bool | None:
    tx, ty = type(x), type(y)
    if tx is NoValue or ty is NoValue:
        return None
    if tx is bool or ty is bool:
        return tx is ty and x == y
    if _is_num(x) and _is_num(y):
        return bool(x == y)
    return tx is ty and bool(x == y)


def coll_eq(a: Coll, b: Coll) -> bool | None:
    if not a or not b:
        return None
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        r = item_eq(x, y)
        if r is not True:
            return r
    return True


_DT = re.compile(
    r"(\d{4})(?:-(\d\d)(?:-(\d\d)(?:T(\d\d):(\d\d)(?::(\d\d)(\.\d+)?)?(Z|[+-]\d\d:\d\d)?)?)?)?",
    re.ASCII,
).fullmatch


def _instant(g: tuple[Any, ...]) -> datetime:
    tz: timezone = UTC
    if g[7] and g[7] != "Z":
        sign = -1 if g[7][0] == "-" else 1
        tz = timezone(sign * timedelta(hours=int(g[7][1:3]), minutes=int(g[7][4:6])))
    micro = int((g[6] or ".0")[1:7].ljust(6, "0"))
    year, month, day, hour, minute = (int(p) for p in g[:5])
    second = int(g[5] or 0)
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz).astimezone(UTC)


def _date_cmp(x: re.Match[str], y: re.Match[str]) -> int | None:
    gx, gy = x.groups(), y.groups()
    if gx[3] is not None and gy[3] is not None:
        ix, iy = _instant(gx), _instant(gy)
        return (ix > iy) - (ix < iy)
    dx = [int(p) for p in gx[:3] if p is not None]
    dy = [int(p) for p in gy[:3] if p is not None]
    for a, b in zip(dx, dy, strict=False):
        if a != b:
            return (a > b) - (a < b)
    if len(dx) == len(dy) and gx[3] is None and gy[3] is None:
        return 0
    return None  # equal as far as both are precise: unknown, per the FHIRPath spec


def _quantity_cmp(x: dict[str, Any], y: dict[str, Any]) -> int | None:
    vx, vy = x.get("value"), y.get("value")
    if not _is_num(vx) or not _is_num(vy):
        return None
    ux = (x.get("system"), x.get("code") or x.get("unit"))
    uy = (y.get("system"), y.get("code") or y.get("unit"))
    if ux != uy:
        return None  # no unit conversion here
    return int(vx > vy) - int(vx < vy)  # type: ignore[operator]


def compare(a: Coll, b: Coll) -> int | None:
    if not a or not b:
        return None
    if len(a) != 1 or len(b) != 1:
        fail("comparison of collections with several items")
    x, y = a[0], b[0]
    if type(x) is NoValue or type(y) is NoValue:
        return None
    if _is_num(x) and _is_num(y):
        return int(x > y) - int(x < y)
    if type(x) is str and type(y) is str:
        mx, my = _DT(x), _DT(y)
        if mx and my:
            return _date_cmp(mx, my)
        return (x > y) - (x < y)
    if type(x) is dict and type(y) is dict:
        return _quantity_cmp(x, y)
    fail(f"cannot compare {type(x).__name__} with {type(y).__name__}")


def _or(a: Fn, b: Fn) -> Fn:
    def fn(focus: Coll, env: Env) -> Coll:
        x = truth(a(focus, env))
        if x is True:
            return [True]
        y = truth(b(focus, env))
        return [True] if y is True else [] if x is None or y is None else [False]

    return fn


def _and(a: Fn, b: Fn) -> Fn:
    def fn(focus: Coll, env: Env) -> Coll:
        x = truth(a(focus, env))
        if x is False:
            return [False]
        y = truth(b(focus, env))
        return [False] if y is False else [] if x is None or y is None else [True]

    return fn


def _xor(a: Fn, b: Fn) -> Fn:
    def fn(focus: Coll, env: Env) -> Coll:
        x, y = truth(a(focus, env)), truth(b(focus, env))
        return [] if x is None or y is None else [x != y]

    return fn


def _implies(a: Fn, b: Fn) -> Fn:
    def fn(focus: Coll, env: Env) -> Coll:
        x = truth(a(focus, env))
        if x is False:
            return [True]
        y = truth(b(focus, env))
        if x is True:
            return [] if y is None else [y]
        return [True] if y is True else []

    return fn


def _equality(a: Fn, b: Fn, negate: bool) -> Fn:
    def fn(focus: Coll, env: Env) -> Coll:
        r = coll_eq(a(focus, env), b(focus, env))
        return [] if r is None else [r != negate]

    return fn


def _comparison(a: Fn, b: Fn, test: Callable[[int], bool]) -> Fn:
    def fn(focus: Coll, env: Env) -> Coll:
        r = compare(a(focus, env), b(focus, env))
        return [] if r is None else [test(r)]

    return fn


def _member_of(a: Fn, b: Fn, swap: bool) -> Fn:
    def fn(focus: Coll, env: Env) -> Coll:
        left, right = a(focus, env), b(focus, env)
        if swap:
            left, right = right, left
        if not left:
            return []
        if len(left) > 1:
            fail("'in' needs a single item on its left")
        return [any(item_eq(left[0], r) is True for r in right)]

    return fn


def _identity(v: Any) -> Any:
    """A hashable key that is equal exactly when item_eq() says True (bundles can hold
    thousands of entries, so isDistinct() must not compare pairwise)."""
    t = type(v)
    if t is int or t is float:
        return (0, v)
    if t is str or t is bool:
        return (t.__name__, v)
    if t is dict or t is list:
        return (2, orjson.dumps(v, option=orjson.OPT_SORT_KEYS))
    return (3, id(v))  # NoValue: equality is unknown, so never a duplicate


def distinct(items: Coll) -> Coll:
    seen: set[Any] = set()
    out: Coll = []
    for v in items:
        key = _identity(v)
        if key not in seen:
            seen.add(key)
            out.append(v)
    return out


def _plus(a: Fn, b: Fn) -> Fn:
    def fn(focus: Coll, env: Env) -> Coll:
        x, y = a(focus, env), b(focus, env)
        if not x or not y:
            return []
        if len(x) > 1 or len(y) > 1:
            fail("'+' needs single items")
        if type(x[0]) is str and type(y[0]) is str:
            return [x[0] + y[0]]
        if _is_num(x[0]) and _is_num(y[0]):
            return [x[0] + y[0]]
        fail("'+' on unsupported types")

    return fn


def _concat(a: Fn, b: Fn) -> Fn:
    def fn(focus: Coll, env: Env) -> Coll:
        x, y = a(focus, env), b(focus, env)
        if len(x) > 1 or len(y) > 1:
            fail("'&' needs single items")
        return [str(x[0] if x else "") + str(y[0] if y else "")]

    return fn


BINARY: dict[str, Callable[[Fn, Fn], Fn]] = {
    "or": _or,
    "and": _and,
    "xor": _xor,
    "implies": _implies,
    "=": lambda a, b: _equality(a, b, False),
    "!=": lambda a, b: _equality(a, b, True),
    "<": lambda a, b: _comparison(a, b, lambda r: r < 0),
    "<=": lambda a, b: _comparison(a, b, lambda r: r <= 0),
    ">": lambda a, b: _comparison(a, b, lambda r: r > 0),
    ">=": lambda a, b: _comparison(a, b, lambda r: r >= 0),
    "in": lambda a, b: _member_of(a, b, False),
    "contains": lambda a, b: _member_of(a, b, True),
    "|": lambda a, b: lambda focus, env: distinct(a(focus, env) + b(focus, env)),
    "+": _plus,
    "&": _concat,
}

EXTERNAL: dict[str, Fn] = {
    "resource": lambda focus, env: [env.resource],
    "rootResource": lambda focus, env: [env.root],
    "context": lambda focus, env: [env.context],
    "ucum": lambda focus, env: ["http://unitsofmeasure.org"],
    "sct": lambda focus, env: ["http://snomed.info/sct"],
    "loinc": lambda focus, env: ["http://loinc.org"],
}


def index(items: Coll, idx: Coll) -> Coll:
    if len(idx) != 1 or type(idx[0]) is not int:
        fail("an index must be a single integer")
    i = idx[0]
    return items[i : i + 1] if i >= 0 else []
