"""Where data lives: a local path or an ``s3://bucket/key``, parsed once by :meth:`Location.parse`.

Every function that takes "a folder or an ``s3://`` prefix" parses it into a
:class:`Location`; no other code splits URIs. Accepted forms:

- a local path (``data/raw``, ``/tmp/x``, a :class:`~pathlib.Path`);
- a ``file://`` URI: the rest is the path (``file:///tmp/x`` is ``/tmp/x``);
- ``s3://bucket`` or ``s3://bucket/key``: the key is kept as written (a trailing ``/``
  means a prefix, a "folder").

Any other ``scheme://`` (``gs://``, ``http://``...) and an ``s3://`` URI without a bucket
are refused with a :class:`~churn.errors.ChurnError` naming the URI.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from churn.errors import ChurnError

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True)
class Location:
    """A local path (``bucket`` empty) or an S3 object or prefix.

    Attributes:
        bucket: The S3 bucket; empty for a local path.
        key: The S3 key or prefix as written (may end in ``/``); for a local path, the path.

    """

    bucket: str
    key: str

    @classmethod
    def parse(cls, where: str | os.PathLike[str] | Location) -> Location:
        """The location a path, a ``file://`` URI or an ``s3://bucket/key`` URI names.

        Raises:
            ChurnError: An ``s3://`` URI names no bucket, or the URI has another scheme.

        """
        if isinstance(where, Location):
            return where
        text = os.fspath(where)
        if text.startswith("s3://"):
            bucket, _, key = text.removeprefix("s3://").partition("/")
            if not bucket:
                raise ChurnError(f"{text!r} names no bucket (expected s3://bucket/prefix)")
            return cls(bucket, key)
        if scheme := _SCHEME.match(text):
            if scheme.group(1) != "file":
                raise ChurnError(
                    f"{text!r}: unsupported URI scheme {scheme.group(1)}:// (use a path, file:// or s3://)"
                )
            text = text.removeprefix("file://")
        return cls("", str(Path(text)))

    @classmethod
    def s3(cls, bucket: str, key: str = "") -> Location:
        """The S3 location ``s3://bucket/key``.

        Raises:
            ChurnError: ``bucket`` is empty.

        """
        if not bucket:
            raise ChurnError(f"s3:///{key} names no bucket (expected s3://bucket/prefix)")
        return cls(bucket, key)

    @property
    def is_s3(self) -> bool:
        """Whether this is an S3 location (else a local path)."""
        return bool(self.bucket)

    @property
    def path(self) -> Path:
        """The local path.

        Raises:
            ChurnError: This is an S3 location.

        """
        if self.is_s3:
            raise ChurnError(f"{self} is on S3, not a local path")
        return Path(self.key)

    @property
    def prefix(self) -> str:
        """The S3 key as a folder prefix: ``""`` for the bucket's root, else ending in ``/``."""
        key = self.key.strip("/")
        return f"{key}/" if key else ""

    @property
    def name(self) -> str:
        """The last part of the key or path (``""`` for a folder written with a trailing ``/``)."""
        return self.key.rsplit("/", 1)[-1]

    def folder(self) -> Location:
        """The location as a folder: on S3 its key becomes :attr:`prefix`; a local path is unchanged."""
        return Location(self.bucket, self.prefix) if self.is_s3 else self

    def join(self, *names: str) -> Location:
        """The location of ``names`` under this one (a folder or prefix)."""
        if not self.is_s3:
            return Location("", str(Path(self.key, *names)))
        key = self.prefix + "/".join(n.strip("/") for n in names if n.strip("/"))
        return Location(self.bucket, key + "/" if names and names[-1].endswith("/") else key)

    def __str__(self) -> str:
        """``s3://bucket/key``, or the local path as given."""
        return f"s3://{self.bucket}/{self.key}" if self.is_s3 else self.key

    def __fspath__(self) -> str:
        """The local path (so ``open(location)`` works).

        Raises:
            ChurnError: This is an S3 location.

        """
        return str(self.path)
