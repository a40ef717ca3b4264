"""The job store: SQLite (WAL, synchronous=FULL), and its async face that publishes job changes."""

from controller.store.aio import AsyncStore
from controller.store.db import MAX_ID, JobEvent, NotFound, Store
from controller.store.migrations import MIGRATIONS

__all__ = ["MAX_ID", "MIGRATIONS", "AsyncStore", "JobEvent", "NotFound", "Store"]
