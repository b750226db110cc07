"""File helpers every layer shares: content hashes, writes that readers never see half done, and the
small JSON tables caches keep."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write via a temp file in the same folder + rename: readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide shared models from other users
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_table(path: str | Path) -> dict:
    """A small JSON object kept in a file (a cache's table): {} where there is none yet, or the file is
    unreadable or holds something else."""
    try:
        table = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return table if isinstance(table, dict) else {}


def put_json_entry(path: str | Path, key: str, value) -> None:
    """One entry of such a table set, the file replaced whole: of two writers at once, the last whole
    file wins."""
    atomic_write_bytes(path, json.dumps({**json_table(path), key: value}, indent=1).encode())
