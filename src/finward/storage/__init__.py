"""Shared state behind URLs: ``memory://`` (per process) and ``redis://`` (shared).

The Redis backend is imported on demand by :func:`open_state_store`, so the package
works without redis-py installed for ``memory://`` users.
"""

from finward.storage.base import (
    Revocation,
    StateStore,
    StateStoreError,
    StateStoreFullError,
    StateStoreUnavailable,
    StateStoreURLError,
    Suspension,
    open_state_store,
    parse_state_store_url,
)
from finward.storage.memory import MemoryStateStore

__all__ = [
    "MemoryStateStore",
    "Revocation",
    "StateStore",
    "StateStoreError",
    "StateStoreFullError",
    "StateStoreURLError",
    "StateStoreUnavailable",
    "Suspension",
    "open_state_store",
    "parse_state_store_url",
]
