"""Where a study lives (a journal file or a database) and the lock its workers claim
trials under: one that dies with its holder, so a killed worker never blocks the others."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import tempfile
from pathlib import Path
from typing import Any

import optuna
from optuna.storages.journal import JournalFileBackend, JournalStorage
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from anomigan.mlops import tracking


def default_storage() -> str:
    """A journal file next to the tracking store (a local SQLite/file store), else in cwd.

    A journal file rather than SQLite because several local processes append to it safely.
    """
    uri = tracking.tracking_uri()
    folder = Path.cwd()
    if uri.startswith("sqlite:///"):
        folder = Path(uri.removeprefix("sqlite:///")).parent
    elif uri.startswith("file:") or "://" not in uri:
        folder = Path(uri.removeprefix("file://").removeprefix("file:")).parent
    return f"journal:{(folder.resolve() / 'optuna.journal')}"


def open_storage(spec: str | None) -> optuna.storages.BaseStorage:
    """`journal:PATH` (or a plain file path): an Optuna journal file (local or shared disk);
    any other `scheme://` URL: an Optuna RDB storage (sqlite, postgresql, mysql...)."""
    spec = spec or default_storage()
    if "://" not in spec or spec.startswith("journal:"):
        path = Path(spec.removeprefix("journal:").removeprefix("//"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    kwargs: dict[str, Any] = {}
    if spec.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    try:
        return optuna.storages.RDBStorage(spec, **kwargs)
    except Exception as exc:  # a bad URL: name it (without a password) and the kind of failure
        hint = " (its database driver is not installed)" if isinstance(exc, ImportError) else ""
        raise ValueError(
            f"cannot open Optuna storage {describe_storage(spec)}: {type(exc).__name__}{hint}"
        ) from None


def describe_storage(spec: str | None) -> str:
    """The storage as it may be logged: a database URL's password is masked."""
    spec = spec or default_storage()
    if "://" in spec and not spec.startswith("journal:"):
        with contextlib.suppress(Exception):
            return make_url(spec).render_as_string(hide_password=True)
        return spec.split("://", 1)[0] + "://***"
    return spec


def _is_postgres(spec: str) -> bool:
    with contextlib.suppress(Exception):
        return make_url(spec).get_backend_name() == "postgresql"
    return False


@contextlib.contextmanager
def claim_lock(storage_spec: str, study_name: str):
    """Serialise claiming (recover dead trials, count, `ask`, record the owner) among every
    worker of a study. A lock that dies with its holder, so a killed worker never blocks the
    others: on a PostgreSQL storage a session advisory lock (every machine; the server drops it
    with the killed worker's connection), else `flock` on a file next to a journal (shared
    disks too) or, for other databases, in this machine's temp folder."""
    key = hashlib.sha256(f"{describe_storage(storage_spec)}|{study_name}".encode()).digest()
    if _is_postgres(storage_spec):
        lock_id = int.from_bytes(key[:8], "big", signed=True)
        engine = create_engine(storage_spec, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_id})
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_id})
        finally:
            engine.dispose()
        return
    if "://" not in storage_spec or storage_spec.startswith("journal:"):
        path = Path(storage_spec.removeprefix("journal:").removeprefix("//"))
        path = path.with_name(f"{path.name}.{key[:4].hex()}.lock")
    else:
        path = Path(tempfile.gettempdir()) / f"anomigan-claim-{key[:8].hex()}.lock"
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
