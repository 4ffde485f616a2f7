"""Where the pages of a search come from, in a stable order (keyset paging).

- PlainSource: the matches of one type, walked bucket by bucket (storage/walk.py) in `_id`
  or date order.
- ChainSource (`subject:Patient.family=x`): the inner search is walked first, in its own
  order; for each inner match, the outer resources referring to it are read through their
  reference key (one equality). Results come in inner order, then by outer `_id`, so a page
  reads about a page of inner and outer documents whatever the sizes.
- HasSource (`_has:Observation:patient:code=x`): the inner search is walked; the resources
  each inner match refers to come in the order of their first inner match, once each.

Every order key is a JSON-able list whose last element is the document's `_id`; a cursor
is such a key (the last one of a page), and a page resumes after it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from fhirhub.fhir.errors import TooCostly
from fhirhub.fhir.search.keys import REFERENCE_KEYS, TOKEN_KEYS, token_key
from fhirhub.storage import filter_eval
from fhirhub.storage.documents import INDEX_PREFIX
from fhirhub.storage.search_store import Document, SearchStore
from fhirhub.storage.trees import IdTree
from fhirhub.storage.walk import Conditions, Tree

Key = list[Any]
UNBOUNDED = float("inf")
# A keyed search first reads this many candidates unordered (most are that small) ...
PROBE = 8
# ... where that read is bounded. A read costs every row its conditions match, not its
# limit: with a filter, FerretDB 1.24 does not push the limit down and drains PostgreSQL's
# whole result (a limit-9 read of a LOINC code with 4,301 matches took 800 ms; the same in
# a 1/16 `_id` bucket 52 ms, at load 22). So the probe, a read of the whole key, is made
# only in a small type or for keys that name one resource's data (a reference, an
# identifier); other searches are walked bucket by bucket from the start.
PROBE_TYPE_MAX = 1000
SELECTIVE_TOKENS = ("identifier=",)
# A chain or _has reads its inner search in batches of this many.
INNER_BATCH = 8


@dataclass
class Page:
    docs: list[Document]
    keys: list[Key]
    complete: bool  # nothing follows these
    measure: float = 0.0  # share of the ordered space read (PlainSource; for estimates)
    candidates: int = 0


class Source(Protocol):
    def page(self, need: int, anchor: Key | None, reverse: bool = False) -> Page: ...

    def restricted(self, condition: Conditions) -> Source:
        """The same search with one more key condition on its own resources."""
        ...


@dataclass
class PlainSource:
    store: SearchStore
    resource_type: str
    branches: list[Conditions] | None  # None: the whole type
    exact: Document
    prior: float = UNBOUNDED
    tree: Tree | None = None
    key_of: Any = None  # doc -> Key (default: [_id])

    def page(self, need: int, anchor: Key | None, reverse: bool = False) -> Page:
        if self.branches == []:
            return Page([], [], True)
        tree: Tree = self.tree or IdTree(self.resource_type)
        tree_anchor = None if anchor is None else self._tree_anchor(anchor)
        result = self.store.walk(
            tree,
            self.branches if self.branches is not None else [{}],
            self.exact,
            need,
            prior=self.prior,
            anchor=tree_anchor,
            reverse=reverse,
            probe=PROBE
            if self.tree is None and _probe_bounded(self.branches, self.prior)
            else None,
        )
        return Page(
            result.docs,
            [self.key(d) for d in result.docs],
            result.complete,
            result.measure,
            result.candidates,
        )

    def key(self, doc: Document) -> Key:
        return self.key_of(doc) if self.key_of else [doc["_id"]]

    def _tree_anchor(self, anchor: Key) -> Any:
        if self.tree is None:
            return anchor[-1]
        moment = anchor[0]
        parsed = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
        return (parsed, anchor[-1])

    def restricted(self, condition: Conditions) -> PlainSource:
        branches = [{**b, **condition} for b in (self.branches or [{}])]
        return replace(self, branches=branches, prior=min(self.prior, 1000))


def _probe_bounded(branches: list[Conditions] | None, prior: float) -> bool:
    if not branches:
        return False
    if prior <= PROBE_TYPE_MAX:
        return True
    return all(
        REFERENCE_KEYS in b or str(b.get(TOKEN_KEYS, "")).startswith(SELECTIVE_TOKENS)
        for b in branches
    )


@dataclass
class ChainSource:
    store: SearchStore
    inner: Source
    outer: PlainSource  # the outer search without the chained clause
    param: str  # the outer reference parameter

    def page(self, need: int, anchor: Key | None, reverse: bool = False) -> Page:
        if reverse:
            raise TooCostly("a chained search pages forward only; follow the next links")
        out = Page([], [], False)
        inner_anchor: Key | None = None
        if anchor is not None:
            inner_anchor, outer_anchor = anchor[0], anchor[1]
            resumed = self.store.by_keys([inner_anchor[-1]])
            if resumed and not self._emit(out, resumed[0], inner_anchor, need, outer_anchor):
                return out
        while True:
            batch = self.inner.page(INNER_BATCH, inner_anchor)
            for doc, key in zip(batch.docs, batch.keys, strict=True):
                if not self._emit(out, doc, key, need, None):
                    return out
                inner_anchor = key
            if batch.complete:
                out.complete = True
                return out

    def _emit(self, out: Page, inner: Document, inner_key: Key, need: int, after: Any) -> bool:
        """Append the outer matches of one inner match; False once the page is full (its
        outer matches may go on)."""
        rid = str(inner["_id"]).split("/", 1)[1]
        source = self.outer.restricted({REFERENCE_KEYS: token_key(self.param, rid)})
        wanted = need - len(out.docs)
        found = source.page(wanted, None if after is None else [after])
        for doc in found.docs:
            out.docs.append(doc)
            out.keys.append([inner_key, doc["_id"]])
        return found.complete and len(out.docs) < need

    def restricted(self, condition: Conditions) -> ChainSource:
        return replace(self, outer=self.outer.restricted(condition))


@dataclass
class HasSource:
    store: SearchStore
    inner: Source
    param: str  # the inner reference parameter pointing at the outer type
    outer_type: str
    outer_exact: Document

    def page(self, need: int, anchor: Key | None, reverse: bool = False) -> Page:
        if reverse:
            raise TooCostly("a _has search pages forward only; follow the next links")
        seen: set[str] = set()
        out = Page([], [], False)
        inner_anchor: Key | None = None
        if anchor is not None:
            inner_anchor = anchor[0]
            resumed = self.store.by_keys([inner_anchor[-1]])
            if resumed:
                self._emit(out, [(resumed[0], inner_anchor)], need, anchor, seen)
        while len(out.docs) < need:
            # About one new target per inner match: ask for what the page still needs.
            batch = self.inner.page(max(INNER_BATCH, need - len(out.docs) + 1), inner_anchor)
            self._emit(out, list(zip(batch.docs, batch.keys, strict=True)), need, anchor, seen)
            if batch.complete:
                out.complete = len(out.docs) < need or out.complete
                return out
            inner_anchor = batch.keys[-1] if batch.keys else inner_anchor
        return out

    def _emit(
        self,
        out: Page,
        inners: list[tuple[Document, Key]],
        need: int,
        anchor: Key | None,
        seen: set[str],
    ) -> None:
        """Append the targets the inner matches refer to first, in order; a page that
        fills up stops at its last whole inner match, so the cursor resumes after it."""
        prefix = f"{self.outer_type}/"
        wanted: list[tuple[str, Key]] = []
        for inner, inner_key in inners:
            refs = inner.get(INDEX_PREFIX + self.param, [])
            resuming = anchor is not None and inner_key == anchor[0]
            for target in sorted({r for r in refs if isinstance(r, str) and r.startswith(prefix)}):
                if target in seen or (anchor is not None and resuming and target <= anchor[1]):
                    continue
                seen.add(target)
                if anchor is not None and self._seen_before(target, anchor[0], resuming):
                    continue  # its first inner match lies on an earlier page
                wanted.append((target, inner_key))
        found = {d["_id"]: d for d in self.store.by_keys(t for t, _ in wanted)}
        for target, inner_key in wanted:
            doc = found.get(target)
            if doc is None or not filter_eval.matches(doc, self.outer_exact):
                continue
            if len(out.docs) >= need:
                return
            out.docs.append(doc)
            out.keys.append([inner_key, target])

    def _seen_before(self, target: str, inner_anchor: Key, strict: bool) -> bool:
        """Does the inner search refer to `target` before the anchor (or at it)? Its
        targets after the anchor's own were not returned yet."""
        rid = target.split("/", 1)[1]
        first = self.inner.restricted({REFERENCE_KEYS: token_key(self.param, rid)}).page(1, None)
        if not first.keys:
            return False
        key, limit = _comparable(first.keys[0]), _comparable(inner_anchor)
        return key < limit if strict else key <= limit

    def restricted(self, condition: Conditions) -> Source:
        raise TooCostly("_has within a chain or _has is not supported")


def _comparable(key: Any) -> Any:
    if isinstance(key, list):
        return tuple(_comparable(k) for k in key)
    if isinstance(key, datetime):
        return key.isoformat()
    return "" if key is None else key
