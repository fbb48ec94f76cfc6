"""S3: the one settings rule, listing (all pages), batched deletes and whole objects on a real endpoint."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from churn.errors import ChurnError
from churn.storage import Location, copy, read_object, s3, write_object
from churn.storage.sigv4 import S3Target

pytestmark = pytest.mark.unit

KEYS = {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret"}


@pytest.mark.parametrize(
    ("env", "region"),
    [
        ({}, "us-east-1"),
        ({"AWS_DEFAULT_REGION": "eu-west-1"}, "eu-west-1"),
        ({"AWS_REGION": "eu-central-1"}, "eu-central-1"),
        ({"AWS_REGION": "eu-central-1", "AWS_DEFAULT_REGION": "eu-west-1"}, "eu-central-1"),
        ({"AWS_REGION": "", "AWS_DEFAULT_REGION": "eu-west-1"}, "eu-west-1"),
    ],
)
def test_region_rule_aws_region_then_default_region_then_us_east_1(env: dict[str, str], region: str) -> None:
    assert s3.s3_settings(env).region == region
    assert S3Target.from_env({**KEYS, **env}).region == region  # the stdlib signer follows the same rule


def test_endpoint_rule_aws_endpoint_then_mlflow_endpoint_then_aws() -> None:
    both = {"AWS_ENDPOINT_URL": "http://a:9000", "MLFLOW_S3_ENDPOINT_URL": "http://m:9000"}
    assert s3.s3_settings(both).endpoint == "http://a:9000"
    assert s3.s3_settings({"MLFLOW_S3_ENDPOINT_URL": "http://m:9000"}).endpoint == "http://m:9000"
    assert s3.s3_settings({}).endpoint == ""
    assert S3Target.from_env({**KEYS, "AWS_REGION": "eu-west-1"}).endpoint == "https://s3.eu-west-1.amazonaws.com"
    assert S3Target.from_env({**KEYS, "MLFLOW_S3_ENDPOINT_URL": "http://m:9000/"}).endpoint == "http://m:9000"


def test_the_signer_needs_static_keys() -> None:
    with pytest.raises(ChurnError, match="AWS_SECRET_ACCESS_KEY"):
        S3Target.from_env({"AWS_ACCESS_KEY_ID": "id"})


def test_clients_follow_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    assert s3.s3_client().meta.region_name == "eu-central-1"
    assert s3.s3_filesystem().region == "eu-central-1"


def test_storage_imports_neither_boto3_nor_pyarrow() -> None:
    """The serving image has neither: storage (and the prediction-log writer) must import without them."""
    script = (
        "import sys\n"
        "import churn.storage, churn.storage.s3, churn.storage.sigv4, churn.storage.arrow, churn.predictions.logger\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 'pyarrow'))\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture
def prefix(s3_env: str, s3_bucket: str) -> Location:
    return Location.s3(s3_bucket, f"storage-{uuid.uuid4().hex[:8]}/")


def test_listing_reads_every_page_and_deletes_go_in_batches(prefix: Location, monkeypatch: pytest.MonkeyPatch) -> None:
    client = s3.s3_client()
    names = [f"k-{i:03d}" for i in range(25)] + ["sub/a", "sub/b"]
    for name in names:
        s3.put_bytes(prefix.join(name), name.encode(), client=client)
    listed = s3.list_objects(prefix, page_size=4, client=client)
    assert listed.keys == sorted(prefix.key + n for n in names)
    assert {o.size for o in listed.objects} == {5} | {len(n) for n in names}
    one_level = s3.list_objects(prefix, recursive=False, page_size=4, client=client)
    assert len(one_level.keys) == 25 and one_level.prefixes == [prefix.key + "sub/"]
    assert s3.exists(prefix.join("k-000"), client=client) and not s3.exists(prefix.join("k-00"), client=client)

    calls: list[int] = []
    real = client.delete_objects
    monkeypatch.setattr(s3, "DELETE_BATCH", 10)
    monkeypatch.setattr(client, "delete_objects", lambda **kw: calls.append(len(kw["Delete"]["Objects"])) or real(**kw))
    assert s3.delete_objects(prefix.bucket, listed.keys, client=client) == 27
    assert calls == [10, 10, 7]
    assert s3.list_objects(prefix, client=client).keys == []


def test_a_refused_delete_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    class Refusing:
        def delete_objects(self, **_: object) -> dict[str, object]:
            return {"Errors": [{"Key": "p/x", "Message": "Access Denied"}]}

    with pytest.raises(ChurnError, match="cannot delete s3://b/p/x: Access Denied"):
        s3.delete_objects("b", ["p/x"], client=Refusing())


def test_one_object_written_read_and_copied_on_s3_and_locally(prefix: Location, tmp_path: Path) -> None:
    written = write_object(prefix, "date=1/x.bin", b"payload")
    assert written == f"{prefix}date=1/x.bin" and read_object(written) == b"payload"
    local = copy(written, tmp_path / "down" / "x.bin")
    assert Path(local).read_bytes() == b"payload"
    copy(local, prefix.join("up.bin"))
    copy(prefix.join("up.bin"), prefix.join("server-side.bin"))
    assert read_object(prefix.join("server-side.bin")) == b"payload"
    assert write_object(f"file://{tmp_path}/log/", "a/b.bin", b"x") == str(tmp_path / "log" / "a" / "b.bin")


def test_the_signer_writes_what_boto3_reads(prefix: Location) -> None:
    target = S3Target.from_env()
    written = write_object(prefix, "signed.bin", b"signed", target=target)
    assert read_object(written) == b"signed"


def test_a_failed_write_names_the_object(s3_env: str) -> None:
    with pytest.raises(ChurnError, match=r"cannot write the log to s3://no-such-bucket-x/p/x: "):
        write_object("s3://no-such-bucket-x/p", "x", b"x", what="the log")
    with pytest.raises(ChurnError, match=r"cannot read s3://no-such-bucket-x/p/x: "):
        read_object("s3://no-such-bucket-x/p/x")
