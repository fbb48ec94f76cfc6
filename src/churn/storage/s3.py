"""S3 access: the one rule that reads the ``AWS_*`` environment, and the only boto3 and Arrow S3 clients.

The rule (:func:`s3_settings`), for every client here and for the serving image's own signer
(:mod:`churn.storage.sigv4`):

- endpoint: ``AWS_ENDPOINT_URL``, else ``MLFLOW_S3_ENDPOINT_URL`` (MinIO), else AWS itself;
- region: ``AWS_REGION``, else ``AWS_DEFAULT_REGION``, else ``us-east-1`` (the AWS SDKs' order);
- credentials: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``).
  boto3 and Arrow fall back to their own credential chains (profiles, instance roles, web
  identity) when these are unset; the stdlib signer needs them.

boto3, botocore and ``pyarrow.fs`` are imported inside the functions that use them: the
serving image has none of them and imports :mod:`churn.storage` all the same.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from churn.errors import ChurnError
from churn.storage.location import Location

DEFAULT_REGION = "us-east-1"
#: DeleteObjects takes at most this many keys a call.
DELETE_BATCH = 1000


@dataclass(frozen=True)
class S3Settings:
    """Endpoint (``""``: AWS), region and static credentials (``""`` when unset) from the environment."""

    endpoint: str
    region: str
    access_key: str = ""
    secret_key: str = field(default="", repr=False)
    session_token: str = field(default="", repr=False)


def s3_settings(environ: Mapping[str, str] | None = None) -> S3Settings:
    """The S3 settings the ``AWS_*`` environment describes (see the module docstring for the rule)."""
    env = os.environ if environ is None else environ
    return S3Settings(
        endpoint=env.get("AWS_ENDPOINT_URL") or env.get("MLFLOW_S3_ENDPOINT_URL") or "",
        region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION,
        access_key=env.get("AWS_ACCESS_KEY_ID", ""),
        secret_key=env.get("AWS_SECRET_ACCESS_KEY", ""),
        session_token=env.get("AWS_SESSION_TOKEN", ""),
    )


def s3_client() -> Any:
    """A boto3 S3 client on the configured endpoint and region (credentials: boto3's chain, env first)."""
    import boto3  # lazy: the serving image has no boto3

    settings = s3_settings()
    return boto3.client("s3", endpoint_url=settings.endpoint or None, region_name=settings.region)


def s3_filesystem() -> Any:
    """Arrow's S3 filesystem on the configured endpoint, region and credentials.

    Built from the driver's ``AWS_*`` variables and shipped to Dask workers with the tasks,
    so workers need no credentials of their own (and no s3fs).
    """
    import pyarrow.fs  # lazy: the serving image has no pyarrow

    settings = s3_settings()
    keys = bool(settings.access_key and settings.secret_key)
    return pyarrow.fs.S3FileSystem(
        access_key=settings.access_key or None,
        secret_key=settings.secret_key or None,
        session_token=(settings.session_token or None) if keys else None,
        region=settings.region,
        endpoint_override=settings.endpoint or None,
    )


@dataclass(frozen=True)
class ObjectInfo:
    """One listed object: its key, size in bytes and ETag."""

    key: str
    size: int
    etag: str


@dataclass(frozen=True)
class Listing:
    """What a listing found: the objects, and (listing one level) the sub-prefixes."""

    objects: list[ObjectInfo]
    prefixes: list[str]

    @property
    def keys(self) -> list[str]:
        """The objects' keys, in listing (key) order."""
        return [item.key for item in self.objects]


def _s3(where: Location) -> Location:
    if not where.is_s3:
        raise ChurnError(f"{where} is not an s3:// location")
    return where


def list_objects(
    where: Location, *, recursive: bool = True, page_size: int | None = None, client: Any = None
) -> Listing:
    """Every object whose key starts with ``where.key`` (all pages); one level only when not ``recursive``.

    Pass ``where.folder()`` to list a "folder" (the key as a prefix ending in ``/``).
    Listing failures propagate as boto3 raised them; callers name the URI in their error.
    """
    _s3(where)
    options: dict[str, Any] = {} if recursive else {"Delimiter": "/"}
    if page_size:
        options["PaginationConfig"] = {"PageSize": page_size}
    pages = (client or s3_client()).get_paginator("list_objects_v2")
    objects, prefixes = [], []
    for page in pages.paginate(Bucket=where.bucket, Prefix=where.key, **options):
        contents = page.get("Contents", [])
        objects += [ObjectInfo(i["Key"], int(i.get("Size", 0)), str(i.get("ETag", ""))) for i in contents]
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    return Listing(objects, prefixes)


def exists(where: Location, *, client: Any = None) -> bool:
    """Whether the object ``where`` exists (one listing call, no download)."""
    listed = (client or s3_client()).list_objects_v2(Bucket=_s3(where).bucket, Prefix=where.key, MaxKeys=1)
    return any(item["Key"] == where.key for item in listed.get("Contents", []))


def delete_objects(bucket: str, keys: Iterable[str], *, client: Any = None) -> int:
    """Delete the objects ``keys`` of ``bucket`` in batches of :data:`DELETE_BATCH`; the number deleted.

    Raises:
        ChurnError: S3 refused to delete a key (named with its message).

    """
    client = client or s3_client()
    todo = list(keys)
    for first in range(0, len(todo), DELETE_BATCH):
        batch = todo[first : first + DELETE_BATCH]
        answer = client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch]})
        if answer.get("Errors"):
            error = answer["Errors"][0]
            raise ChurnError(f"cannot delete s3://{bucket}/{error['Key']}: {error.get('Message', error)}")
    return len(todo)


def get_bytes(where: Location, *, client: Any = None) -> bytes:
    """The bytes of the object ``where`` (boto3's errors propagate)."""
    body: bytes = (client or s3_client()).get_object(Bucket=_s3(where).bucket, Key=where.key)["Body"].read()
    return body


def put_bytes(where: Location, body: bytes, *, client: Any = None) -> None:
    """Store ``body`` as the object ``where`` in one PUT (boto3's errors propagate)."""
    (client or s3_client()).put_object(Bucket=_s3(where).bucket, Key=where.key, Body=body)


def copy(source: Location, destination: Location, *, client: Any = None) -> None:
    """Copy one object between S3 and a local file, or S3 to S3 (copied by the server); boto3's errors propagate.

    A local destination is written by boto3 in place; wrap it in
    :func:`churn.storage.local.atomic_path` when readers may look.
    """
    client = client or s3_client()
    if source.is_s3 and destination.is_s3:
        client.copy({"Bucket": source.bucket, "Key": source.key}, destination.bucket, destination.key)
    elif source.is_s3:
        client.download_file(source.bucket, source.key, str(destination.path))
    else:
        client.upload_file(str(source.path), _s3(destination).bucket, destination.key)
