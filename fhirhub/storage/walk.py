"""Reading a page of a search in order, bucket by bucket, where the database can neither
sort nor range-scan (FerretDB 1.24 pushes only equality down).

The matches of a search are split by an ordered tree of buckets (trees.py): `_id` order
(hex digits of the id, 16 per level) or a date (decade, year, month, day). Every bucket
is one equality on a key field, so a read of one bucket is an index lookup that returns
only its candidates, whole; they are put in order here and the exact filter decides. The
walk visits buckets in order until the page is full, and chooses how large a bucket to
read from what it has seen so far: it starts where a bucket of an unfiltered search would
hold about a page (from the type's size), and when buckets turn out sparse it reads their
parent whole instead of the remaining siblings one by one (each step 16 times larger). So
a page costs a few lookups and about a page of documents, however large the result and
the type are; a bucket found fuller than expected is split instead of read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from fhirhub.fhir.errors import TooCostly

Document = dict[str, Any]
Conditions = dict[str, Any]
# (conditions, cap) -> the candidates, or None when there are more than cap.
Reader = Callable[[Conditions, int | None], list[Document] | None]

MIN_READ = 16  # candidates a read aims at, at least (an empty read then goes up a level) ...
MAX_READ = 250  # ... and at most (the rest of a large page comes from further reads)
CAP_FACTOR = 4  # a read stops after this many times its aim: the bucket gets split


class Tree(Protocol):
    """An ordered tree of buckets (see trees.py)."""

    @property
    def root(self) -> Any: ...

    def children(self, node: Any, reverse: bool) -> list[Any]: ...

    def is_leaf(self, node: Any) -> bool: ...

    def condition(self, node: Any) -> Conditions: ...

    def measure(self, node: Any) -> float: ...

    def relation(self, node: Any, anchor: Any, reverse: bool) -> int:
        """-1: the node lies wholly before the anchor order key (in walk order), 0: it may
        hold it, 1: wholly after."""
        ...

    def order_key(self, doc: Document) -> Any: ...


@dataclass
class WalkResult:
    docs: list[Document]
    complete: bool  # every candidate was seen: `docs` is the whole (remaining) result
    candidates: int  # documents read
    measure: float  # share of the tree read (for estimates)


@dataclass
class Walk:
    tree: Tree
    read: Reader
    matches: Callable[[Document], bool]
    need: int
    prior: float  # expected candidates in the whole tree (an upper bound is fine)
    budget_ms: int
    anchor: Any = None  # order key of the last document already returned (exclusive)
    reverse: bool = False
    # A search narrowed by keys is usually small: read it whole first, up to this many
    # candidates, before walking (a key is often an identifier or a reference).
    probe: int | None = None
    out: list[Document] = field(default_factory=list)
    _last: Any = None
    _read_candidates: int = 0  # everything read (cost)
    _taken: int = 0  # candidates of the buckets read whole (yield)
    _read_matches: int = 0
    _read_measure: float = 0.0
    _overfull: float = 0.0  # candidates per unit measure seen in buckets read too full
    _started: float = 0.0

    def run(self) -> WalkResult:
        self._last = self.anchor
        self._started = time.monotonic()
        root = self.tree.root
        probed = self.probe is not None and self._expected(root) > self._aim()
        if not (probed and self._read_whole(root, self.probe)):
            self._visit(root)
        return WalkResult(
            self.out[: self.need], not self._full(), self._read_candidates, self._read_measure
        )

    # -- visiting ---------------------------------------------------------------------------

    def _visit(self, node: Any) -> None:
        if self._full():
            return
        if self.anchor is not None and self.tree.relation(node, self.anchor, self.reverse) < 0:
            return
        leaf = self.tree.is_leaf(node)
        readable = leaf or self._expected(node) <= self._aim()
        if readable and self._read_whole(node, None if leaf else self._cap()):
            return
        children = self.tree.children(node, self.reverse)
        for position, child in enumerate(children):
            self._visit(child)
            if self._full() or position == len(children) - 1:
                return
            # Sparse so far: the rest of this node may be cheaper as one read.
            if self._expected(node) <= self._aim() and self._read_whole(node, self._cap()):
                return

    def _read_whole(self, node: Any, cap: int | None) -> bool:
        """Read a node's candidates and take them; False when there were more than cap."""
        if (time.monotonic() - self._started) * 1000 > self.budget_ms:
            raise TooCostly(
                "this search needs more than the query budget "
                "(FHIRHUB_QUERY_TIMEOUT_MS); narrow it with more criteria"
            )
        docs = self.read(self.tree.condition(node), cap)
        measure = self.tree.measure(node)
        if docs is None:
            assert cap is not None
            self._overfull = max(self._overfull, 2 * cap / measure)
            self._read_candidates += cap
            return False
        self._read_candidates += len(docs)
        self._taken += len(docs)
        self._read_measure += measure
        self._take(docs)
        return True

    def _take(self, docs: list[Document]) -> None:
        key = self.tree.order_key
        for doc in sorted(docs, key=key, reverse=self.reverse):
            k = key(doc)
            if self._last is not None and (
                k <= self._last if not self.reverse else k >= self._last
            ):
                continue
            self._last = k
            if self.matches(doc):
                self._read_matches += 1
                self.out.append(doc)
                if self._full():
                    return

    # -- estimates --------------------------------------------------------------------------

    def _density(self) -> float:
        """Expected candidates per unit of the tree's measure."""
        if self._read_measure <= 0:
            return max(self.prior, self._overfull)
        observed = (self._taken + 1) / self._read_measure
        return max(min(observed, max(self.prior, 1.0)), self._overfull)

    def _expected(self, node: Any) -> float:
        return self._density() * self.tree.measure(node)

    def _yield(self) -> float:
        return (self._read_matches + 1) / (self._taken + 1)

    def _aim(self) -> float:
        remaining = self.need - len(self.out)
        return min(max(remaining / self._yield(), MIN_READ), MAX_READ)

    def _cap(self) -> int:
        return int(CAP_FACTOR * self._aim()) + 1

    def _full(self) -> bool:
        return len(self.out) >= self.need
