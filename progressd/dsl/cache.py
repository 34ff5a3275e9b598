"""An in-process cache of plans keyed by the SHA-256 of the document bytes.

Submitting the same file again (the same bytes, whatever its name) returns the very same
``Plan`` object without parsing. The cache is bounded (least recently used goes first);
plans are immutable, so sharing them between runs is safe.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field

import msgspec

from progressd.dsl.conditions import compile_condition
from progressd.dsl.sandbox import analyse
from progressd.dsl.templates import compile_template, direct_code
from progressd.dsl.wbs import Plan


class CacheStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of a ``PlanCache``."""

    size: int
    maxsize: int
    hits: int
    misses: int


def content_hash(data: bytes) -> str:
    """Hex SHA-256 of ``data``: the cache key and ``Plan.source_hash``."""
    return hashlib.sha256(data).hexdigest()


@dataclass(slots=True)
class PlanCache:
    """Bounded LRU mapping content hash -> Plan."""

    maxsize: int = 64
    hits: int = 0
    misses: int = 0
    _plans: OrderedDict[str, Plan] = field(default_factory=OrderedDict)

    def get(self, digest: str) -> Plan | None:
        """The cached plan for ``digest``, counting a hit or a miss."""
        plan = self._plans.get(digest)
        if plan is None:
            self.misses += 1
            return None
        self._plans.move_to_end(digest)
        self.hits += 1
        return plan

    def put(self, digest: str, plan: Plan) -> None:
        """Remember ``plan``, evicting the least recently used beyond ``maxsize``."""
        self._plans[digest] = plan
        self._plans.move_to_end(digest)
        while len(self._plans) > self.maxsize:
            self._plans.popitem(last=False)

    def clear(self) -> None:
        """Forget every plan (counters stay)."""
        self._plans.clear()

    def statistics(self) -> CacheStatistics:
        """A snapshot of the counters."""
        return CacheStatistics(
            size=len(self._plans), maxsize=self.maxsize, hits=self.hits, misses=self.misses
        )


def clear_compiled() -> None:
    """Empty the source-text caches of compiled conditions and templates (tests, benchmarks).

    Plans stay valid: their ``Condition``/``Template`` records recompile on next use.
    """
    compile_condition.cache_clear()
    compile_template.cache_clear()
    analyse.cache_clear()
    direct_code.cache_clear()


DEFAULT_CACHE = PlanCache()
"""The process-wide cache ``load_plan`` uses unless given another."""

__all__ = ["DEFAULT_CACHE", "CacheStatistics", "PlanCache", "clear_compiled", "content_hash"]
