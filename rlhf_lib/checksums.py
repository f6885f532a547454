"""The records a stage keeps of its files (all lessons): each file's size and sha256, as stage.json's "files" holds
them. `stages` writes and checks them for a whole stage folder; `models` checks a checkpoint folder before loading
it. One hash per file and process: the hashes are cached by modification time and size."""
from __future__ import annotations

import hashlib
from pathlib import Path

_HASHES: dict[str, tuple[int, int, str]] = {}   # path -> (mtime_ns, size, sha256) of the files hashed already


def sha256(path: Path) -> str:
    """The file's sha256, hashed once per process and then cached by modification time and size."""
    st, key = path.stat(), str(path)
    if (cached := _HASHES.get(key)) and cached[:2] == (st.st_mtime_ns, st.st_size):
        return cached[2]
    with open(path, "rb") as f:
        _HASHES[key] = (st.st_mtime_ns, st.st_size, hashlib.file_digest(f, "sha256").hexdigest())
    return _HASHES[key][2]


def mismatch(path: Path, rec, *, verify: bool = True) -> str | None:
    """How `path` differs from its record {"size", "sha256"} in stage.json, or None if it matches (`verify=False`:
    the size only)."""
    if not isinstance(rec, dict) or not isinstance(rec.get("size"), int) or not isinstance(rec.get("sha256"), str):
        return "has a malformed record in stage.json"
    if (size := path.stat().st_size) != rec["size"]:
        return f"has {size} bytes where {rec['size']} were written (truncated or overwritten)"
    if verify and sha256(path) != rec["sha256"]:
        return "differs from the file that was written (its sha256 is not the one stage.json recorded)"
    return None
