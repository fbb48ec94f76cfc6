"""Whole objects under a root that is a local folder or an ``s3://`` prefix.

:func:`write_object` is the one way to put a file where readers look: locally to a hidden
temporary file that is flushed and renamed into place, on S3 in one ``PUT`` (S3 never shows
a partial object). :func:`copy` moves one file or object between any two locations the same
way. boto3 is imported only when an S3 location is used (see :mod:`churn.storage.s3`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from churn.errors import ChurnError
from churn.storage import s3
from churn.storage.local import atomic_path, copy_file, write_bytes
from churn.storage.location import Location

if TYPE_CHECKING:
    from churn.storage.sigv4 import S3Target


def write_object(
    root: str | os.PathLike[str] | Location,
    name: str,
    body: bytes,
    *,
    what: str = "",
    target: S3Target | None = None,
    client: Any = None,
) -> str:
    """Write ``body`` whole as ``name`` under ``root``; return the path or URI written.

    Args:
        root: A folder, ``file://`` URI or ``s3://bucket/prefix``.
        name: The object's name under the root (may hold ``/``).
        body: Its bytes.
        what: What is written, for the error message (``"the prediction log"``).
        target: On S3, sign the PUT with the standard-library signer for this target
            (the serving image has no boto3); else boto3 writes it.
        client: A boto3 client to reuse.

    Raises:
        ChurnError: The store refused the object or could not be reached.

    """
    where = Location.parse(root).folder().join(name)
    into = f"{what} to " if what else ""
    try:
        if not where.is_s3:
            write_bytes(body, where.path)
        elif target is not None:
            from churn.storage.sigv4 import put_object

            put_object(target, where, body)
        else:
            s3.put_bytes(where, body, client=client)
    except ChurnError:
        raise
    except Exception as exc:  # boto3 raises many kinds; each means "cannot write it"
        raise ChurnError(f"cannot write {into}{where}: {exc}") from exc
    return str(where)


def read_object(where: str | os.PathLike[str] | Location, *, client: Any = None) -> bytes:
    """The bytes of one file or S3 object.

    Raises:
        ChurnError: It cannot be read (named).

    """
    location = Location.parse(where)
    try:
        return s3.get_bytes(location, client=client) if location.is_s3 else location.path.read_bytes()
    except Exception as exc:  # boto3 raises many kinds; each means "cannot read it"
        raise ChurnError(f"cannot read {location}: {exc}") from exc


def object_exists(where: str | os.PathLike[str] | Location, *, client: Any = None) -> bool:
    """Whether one file or S3 object exists (on S3 one listing call, no download).

    Raises:
        ChurnError: The store cannot be asked (named).

    """
    location = Location.parse(where)
    try:
        return s3.exists(location, client=client) if location.is_s3 else location.path.is_file()
    except Exception as exc:  # boto3 raises many kinds; each means "cannot ask"
        raise ChurnError(f"cannot look for {location}: {exc}") from exc


def copy(
    source: str | os.PathLike[str] | Location, destination: str | os.PathLike[str] | Location, *, client: Any = None
) -> str:
    """Copy one file or object, each side local or on S3; a local destination is replaced atomically.

    S3 to S3 is copied by the server. Errors propagate as the store raised them (boto3's or
    ``OSError``); callers name the locations in their message.

    Returns:
        The destination's path or URI.

    """
    src, dst = Location.parse(source), Location.parse(destination)
    if not src.is_s3 and not dst.is_s3:
        copy_file(src.path, dst.path)
    elif dst.is_s3:
        s3.copy(src, dst, client=client)
    else:
        with atomic_path(dst.path) as tmp:
            s3.copy(src, Location.parse(tmp), client=client)
    return str(dst)
