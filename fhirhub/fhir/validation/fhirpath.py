"""A native compiler for the FHIRPath subset the R4 core invariants use (pure).

fhirpathpy needs ~30 µs per evaluation, too slow for invariants that nearly every resource
hits (per-1, qty-3, obs-6, ...). We reuse its parser and turn the syntax tree into plain
closures over the JSON; member names are resolved against the compiled element model, so
`value` finds `valueQuantity`. Anything outside the subset raises Unsupported at compile
time, and the caller falls back to fhirpathpy for that expression.
"""

from __future__ import annotations

from typing import Any

from fhirpathpy.parser import parse

from fhirhub.fhir.validation import fhirpath_ops as ops
from fhirhub.fhir.validation.fhirpath_functions import ITERATING, PLAIN
from fhirhub.fhir.validation.fhirpath_ops import Coll, Env, EvalError, Fn, NoValue, Unsupported
from fhirhub.fhir.validation.model import COMPLEX, INLINE, Element, ModelRegistry, TypeNode

__all__ = ["Compiler", "Env", "EvalError", "Unsupported"]

Compiled = tuple[Fn, TypeNode | None]


def _sparse(out: Coll, values: list[Any], exts: Any) -> None:
    """A primitive array with nulls: the parallel `_name` array supplies extension-only items."""
    if type(exts) is not list:
        exts = []
    for i, v in enumerate(values):
        if v is not None:
            out.append(v)
        elif i < len(exts) and type(exts[i]) is dict:
            out.append(NoValue(exts[i]))


def _extension_only(out: Coll, ext: Any) -> None:
    if type(ext) is dict:
        out.append(NoValue(ext))
    elif type(ext) is list:
        out.extend(NoValue(e) for e in ext if type(e) is dict)


def _navigate(keys: tuple[str, ...]) -> Fn:
    if len(keys) != 1:
        parts = [_navigate((k,)) for k in keys]
        return lambda focus, env: [v for part in parts for v in part(focus, env)]
    key = keys[0]
    companion = "_" + key

    def nav(focus: Coll, env: Env) -> Coll:
        out: Coll = []
        for item in focus:
            if type(item) is not dict:
                if type(item) is not NoValue:
                    continue
                item = item.ext
            value = item.get(key)
            if value is None:
                ext = item.get(companion)
                if ext is not None:
                    _extension_only(out, ext)
            elif type(value) is list:
                if None in value:
                    _sparse(out, value, item.get(companion))
                else:
                    out.extend(value)
            else:
                out.append(value)
        return out

    return nav


def _type_filter(name: str) -> Fn:
    return lambda focus, env: [
        i for i in focus if type(i) is dict and i.get("resourceType", name) == name
    ]


def _type_function(n: dict[str, Any]) -> tuple[str, str] | None:
    """('is', 'Quantity') for an invocation like .is(Quantity), else None."""
    if n["type"] != "FunctionInvocation":
        return None
    fn = n["children"][0]
    name = fn["children"][0]["text"]
    params = fn["children"][1]["children"] if len(fn["children"]) > 1 else []
    if name in ("is", "as", "ofType") and len(params) == 1:
        return name, params[0]["text"]
    return None


def _resource_of(item: Any, type_name: str) -> bool:
    return type(item) is dict and item.get("resourceType") == type_name


def _unescape(literal: str) -> str:
    body, out, i = literal[1:-1], [], 0
    simple = {"'": "'", '"': '"', "`": "`", "\\": "\\", "/": "/", "f": "\f", "n": "\n"}
    simple |= {"r": "\r", "t": "\t"}
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt == "u" and i + 5 < len(body):
                out.append(chr(int(body[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append(simple.get(nxt, "\\" + nxt))  # keep unknown escapes for regexes
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


class Compiler:
    def __init__(self, models: ModelRegistry) -> None:
        self._models = models
        # navigation functions -> (element navigated to, function producing its parents)
        self._members: dict[Fn, tuple[Element, Fn | None]] = {}

    def compile(self, expression: str, ctx: TypeNode | None) -> Fn:
        try:
            tree = parse(expression)
        except Exception as exc:  # the parser raises bare Exceptions
            raise Unsupported(f"parse error: {exc}") from None
        try:
            fn, _ = self._expr(tree["children"][0], ctx)
        finally:
            self._members.clear()
        return fn

    def _expr(self, n: dict[str, Any], ctx: TypeNode | None) -> Compiled:
        kind = n["type"]
        ch = n.get("children", [])
        if kind == "TermExpression":
            return self._term(ch[0], ctx)
        if kind == "InvocationExpression":
            left, lctx = self._expr(ch[0], ctx)
            type_test = _type_function(ch[1])
            if type_test is not None:
                return self._type_op(type_test[0], left, type_test[1]), None
            right, rctx = self._invocation(ch[1], lctx, start=False)

            def chained(focus: Coll, env: Env) -> Coll:
                return right(left(focus, env), env)

            if right in self._members:
                self._members[chained] = (self._members[right][0], left)
            return chained, rctx
        op = (n.get("terminalNodeText") or [""])[0]
        if kind == "PolarityExpression":
            inner, _ = self._expr(ch[0], ctx)
            if op == "+":
                return inner, None
            return (lambda focus, env: [-v for v in inner(focus, env)]), None
        if kind == "IndexerExpression":
            base, bctx = self._expr(ch[0], ctx)
            index, _ = self._expr(ch[1], ctx)
            return (lambda focus, env: ops.index(base(focus, env), index(focus, env))), bctx
        if kind == "TypeExpression":
            inner, _ = self._expr(ch[0], ctx)
            return self._type_op(op, inner, ch[1]["text"]), None
        binary = ops.BINARY.get(op)
        if binary is None or len(ch) != 2:
            raise Unsupported(f"{kind} {op!r}")
        a, _ = self._expr(ch[0], ctx)
        b, _ = self._expr(ch[1], ctx)
        return binary(a, b), None

    def _term(self, n: dict[str, Any], ctx: TypeNode | None) -> Compiled:
        kind = n["type"]
        ch = n.get("children", [])
        if kind == "InvocationTerm":
            return self._invocation(ch[0], ctx, start=True)
        if kind == "ParenthesizedTerm":
            return self._expr(ch[0], ctx)
        if kind == "LiteralTerm":
            value = self._literal(ch[0])
            return (lambda focus, env: list(value)), None
        if kind == "ExternalConstantTerm":
            name = ch[0]["children"][0]["text"].strip("`'")
            getter = ops.EXTERNAL.get(name)
            if getter is None:
                raise Unsupported(f"%{name}")
            return getter, None
        raise Unsupported(kind)

    def _literal(self, n: dict[str, Any]) -> Coll:
        kind, text = n["type"], n.get("text", "")
        if kind == "StringLiteral":
            return [_unescape(text)]
        if kind == "NumberLiteral":
            return [float(text) if "." in text else int(text)]
        if kind == "BooleanLiteral":
            return [text == "true"]
        if kind == "NullLiteral":
            return []
        raise Unsupported(kind)

    def _invocation(self, n: dict[str, Any], ctx: TypeNode | None, start: bool) -> Compiled:
        kind = n["type"]
        if kind == "ThisInvocation":
            return (lambda focus, env: focus), ctx
        if kind == "MemberInvocation":
            name = n["children"][0]["text"].strip("`")
            if start and name[:1].isupper():
                return _type_filter(name), ctx
            return self._member(name, ctx)
        if kind == "FunctionInvocation":
            fn = n["children"][0]
            name = fn["children"][0]["text"]
            params = fn["children"][1]["children"] if len(fn["children"]) > 1 else []
            return self._function(name, params, ctx)
        raise Unsupported(kind)

    def _member(self, name: str, ctx: TypeNode | None) -> Compiled:
        element = ctx.by_name.get(name) if ctx is not None else None
        if element is None:
            return _navigate((name,)), None
        slots = element.slots
        out: TypeNode | None = None
        if len(slots) == 1 and slots[0].kind in (COMPLEX, INLINE):
            out = self._models.node_of(slots[0])
        nav = _navigate(tuple(s.key for s in slots))
        self._members[nav] = (element, None)
        return nav, out

    def _type_op(self, op: str, inner: Fn, type_name: str) -> Fn:
        member = self._members.get(inner)
        if member is not None and member[0].choice:
            return self._choice_type_op(op, inner, type_name, *member)
        if type_name not in self._models.resource_types:
            raise Unsupported(f"type test against {type_name}")
        if op in ("as", "ofType"):
            return lambda focus, env: [i for i in inner(focus, env) if _resource_of(i, type_name)]

        def is_type(focus: Coll, env: Env) -> Coll:
            items = inner(focus, env)
            if len(items) != 1:
                return [] if not items else ops.fail("is() on a collection")
            return [_resource_of(items[0], type_name)]

        return is_type

    def _choice_type_op(
        self, op: str, inner: Fn, type_name: str, element: Element, parent: Fn | None
    ) -> Fn:
        """`value is Quantity` / `value as decimal`: the JSON key names the chosen type."""
        wanted = type_name.rpartition(".")[2].lower()
        narrowed = _navigate(tuple(s.key for s in element.slots if s.code.lower() == wanted))

        def only(focus: Coll, env: Env) -> Coll:
            return narrowed(focus if parent is None else parent(focus, env), env)

        if op in ("as", "ofType"):
            return only

        def is_type(focus: Coll, env: Env) -> Coll:
            items = inner(focus, env)
            if len(items) != 1:
                return [] if not items else ops.fail("is() on a collection")
            return [bool(only(focus, env))]

        return is_type

    def _function(self, name: str, params: list[Any], ctx: TypeNode | None) -> Compiled:
        if name in ("is", "as", "ofType") and len(params) == 1:
            return self._type_op(name, lambda focus, env: focus, params[0]["text"]), None
        if name in ITERATING:
            args = [self._expr(p, ctx)[0] for p in params]
            out_ctx = ctx if name in ("where", "first", "last", "tail", "trace") else None
            return ITERATING[name](args), out_ctx
        if name in PLAIN:
            args = [self._expr(p, ctx)[0] for p in params]
            return PLAIN[name](args), None
        raise Unsupported(f"{name}()")
