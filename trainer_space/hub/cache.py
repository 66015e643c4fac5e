"""A small thread-safe cache with a time to live and a size bound (whoami answers, flavors, model facts,
tokenizers). Keys that depend on a visitor are built with `visitor_key`: a hash of the token, never the token."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


def visitor_key(token: str | None) -> str:
    """A stable, non-reversible key for one visitor's token ("anon" when signed out)."""
    return hashlib.sha256(token.encode()).hexdigest()[:32] if token else "anon"


class TTLCache(Generic[V]):
    """`get`/`put` with a TTL per entry, least recently used entries dropped past `max_items`."""

    def __init__(self, ttl_s: float, max_items: int = 256) -> None:
        self.ttl_s, self.max_items = ttl_s, max_items
        self._items: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            item = self._items.get(key)
            if item is None or time.monotonic() - item[0] > self.ttl_s:
                self._items.pop(key, None)
                return None
            self._items.move_to_end(key)
            return item[1]

    def put(self, key: Hashable, value: V, *, ttl_s: float | None = None) -> V:
        """Store `value`; a shorter `ttl_s` makes this entry expire sooner than the cache's TTL."""
        stamp = time.monotonic() - (self.ttl_s - ttl_s if ttl_s is not None and ttl_s < self.ttl_s else 0.0)
        with self._lock:
            self._items[key] = (stamp, value)
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
        return value

    def get_or_set(self, key: Hashable, make: Callable[[], V]) -> V:
        """The cached value, or `make()` stored (two callers racing may both make it: both are valid)."""
        found = self.get(key)
        return found if found is not None else self.put(key, make())

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
