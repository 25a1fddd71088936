"""Versions stored with every decision: short content hashes of what made it.

The same bytes always give the same version, so a stored decision points at exactly one set
of rule files and one classifier, and a rebuilt artifact keeps its version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path


def content_version(chunks: Iterable[bytes]) -> str:
    """12 hex digits of SHA-256 over ``chunks`` (each hashed apart, so boundaries count)."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(hashlib.sha256(chunk).digest())
    return digest.hexdigest()[:12]


def files_version(paths: Iterable[Path]) -> str:
    """Version of a set of files: their names and contents, in the order given."""
    return content_version(part for path in paths for part in (path.name.encode(), path.read_bytes()))
