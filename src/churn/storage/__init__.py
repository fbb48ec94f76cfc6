"""Storage: the only code that knows S3, URIs and atomic writes.

- :mod:`~churn.storage.location`: :class:`Location`, the one parser of paths, ``file://``
  and ``s3://bucket/key`` URIs;
- :mod:`~churn.storage.local`: atomic local files and folders (temporary file, fsync, rename);
- :mod:`~churn.storage.s3`: the ``AWS_*`` settings rule, the boto3 client and Arrow's S3
  filesystem (imported lazily), listing and batched deletes;
- :mod:`~churn.storage.objects`: one whole object under a folder or an ``s3://`` root;
- :mod:`~churn.storage.sigv4`: one signed S3 ``PUT`` on the standard library (the serving image).

Importing this package imports no boto3, botocore or pyarrow: the serving image has none.
"""

from churn.storage.local import atomic_folder, atomic_path, copy_file, write_bytes, write_json, write_parquet
from churn.storage.location import Location
from churn.storage.objects import copy, object_exists, read_object, write_object

__all__ = [
    "Location",
    "atomic_folder",
    "atomic_path",
    "copy",
    "copy_file",
    "object_exists",
    "read_object",
    "write_bytes",
    "write_json",
    "write_object",
    "write_parquet",
]
