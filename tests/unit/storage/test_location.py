"""Location: the one parser of local paths, ``file://`` and ``s3://bucket/key`` URIs."""

from __future__ import annotations

from pathlib import Path

import pytest

from churn.errors import ChurnError
from churn.storage import Location

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("data/raw", "data/raw"),
        ("data/raw/", "data/raw"),
        ("/tmp/x/y.csv", "/tmp/x/y.csv"),
        ("file:///tmp/x", "/tmp/x"),
        ("file://data/raw/", "data/raw"),
    ],
)
def test_local_paths_and_file_uris(text: str, path: str) -> None:
    where = Location.parse(text)
    assert not where.is_s3 and where.bucket == ""
    assert where.path == Path(path) and str(where) == path


def test_a_path_object_and_a_location_parse_as_themselves(tmp_path: Path) -> None:
    assert Location.parse(tmp_path).path == tmp_path
    where = Location.parse("s3://b/k")
    assert Location.parse(where) is where


@pytest.mark.parametrize(
    ("text", "bucket", "key", "prefix"),
    [
        ("s3://bucket", "bucket", "", ""),
        ("s3://bucket/", "bucket", "", ""),
        ("s3://bucket/key", "bucket", "key", "key/"),
        ("s3://bucket/a/b/", "bucket", "a/b/", "a/b/"),
        ("s3://bucket/a/b.csv", "bucket", "a/b.csv", "a/b.csv/"),
    ],
)
def test_s3_uris_with_and_without_key(text: str, bucket: str, key: str, prefix: str) -> None:
    where = Location.parse(text)
    assert where.is_s3 and (where.bucket, where.key, where.prefix) == (bucket, key, prefix)
    assert str(where) == f"s3://{bucket}/{key}"  # the key as written, trailing slash kept
    assert where.folder().key == prefix


def test_join_builds_children_of_a_folder_or_prefix() -> None:
    assert str(Location.parse("s3://b").join("x.csv")) == "s3://b/x.csv"
    assert str(Location.parse("s3://b/p").join("date=1", "x.csv")) == "s3://b/p/date=1/x.csv"
    assert str(Location.parse("s3://b/p/").join("customers_20260101/")) == "s3://b/p/customers_20260101/"
    assert str(Location.parse("file:///tmp/p/").join("a", "b")) == "/tmp/p/a/b"
    assert Location.parse("s3://b/p/x.csv").name == "x.csv"


@pytest.mark.parametrize("text", ["s3://", "s3:///key", "s3:///"])
def test_an_s3_uri_without_a_bucket_is_refused_by_name(text: str) -> None:
    with pytest.raises(ChurnError, match=f"'{text}' names no bucket"):
        Location.parse(text)


@pytest.mark.parametrize("text", ["gs://bucket/x", "http://host/x", "hdfs://nn/x"])
def test_an_unknown_scheme_is_refused_by_name(text: str) -> None:
    with pytest.raises(ChurnError, match=f"'{text}': unsupported URI scheme"):
        Location.parse(text)


def test_an_s3_location_has_no_local_path() -> None:
    with pytest.raises(ChurnError, match="s3://b/k is on S3"):
        _ = Location.parse("s3://b/k").path
    with pytest.raises(ChurnError, match="names no bucket"):
        Location.s3("", "k")
