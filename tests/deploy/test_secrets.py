"""No credential with a known value: the chart generates every one, keeps it on upgrade, commits none.

What helm can show without a cluster: every credential the chart renders (S3 users, MinIO's
root, MLflow's admin and users, the Pushgateway's user) is random, in no file of the chart,
and different between two installs; given values and existing Secrets are used instead;
the manifests committed for `kubectl apply -k` hold no Secret, and the chart's own
templates/secrets.yaml creates every Secret they name, with every key they read. The
keep-on-upgrade branch is the helper ``churn.generatedFrom`` fed the Secret that ``lookup``
returns in a cluster: it is rendered here with such a Secret built by hand (helm template's
``lookup`` always returns nothing). That ``lookup`` finds the release's Secret during a real
``helm upgrade`` only a cluster can show.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml
from moto.iam.policy_validation import IAMPolicyDocumentValidator

pytestmark = pytest.mark.deploy
ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "churn-mlops"
#: Values that name a user rather than authenticate one (the chart's fixed user names).
USER_NAMES = {"admin", "churn-monitoring", "churn-pipeline", "churn-gate", "churn-reader"}


def _render(helm: str, chart: Path = CHART, *args: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [helm, "template", "churn", str(chart), "--namespace", "ml", *args], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def _secrets(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, str]]:
    return {
        (o["metadata"]["name"], o["metadata"].get("namespace", "ml")): o["stringData"]
        for o in objects
        if o["kind"] == "Secret"
    }


def _credentials(objects: list[dict[str, Any]]) -> dict[str, str]:
    """Every generated credential, by Secret/key (configuration files and user names left out)."""
    return {
        f"{name}/{key}": value
        for (name, _), data in _secrets(objects).items()
        for key, value in data.items()
        if value not in USER_NAMES and not key.endswith((".ini", ".yml"))
    }


def test_a_default_install_has_no_known_credential(helm: str) -> None:
    objects = _render(helm, CHART, "--set", "pipelines.namespace=kubeflow")
    found = _credentials(objects)
    wanted = {
        "churn-s3/AWS_ACCESS_KEY_ID",
        "churn-s3/AWS_SECRET_ACCESS_KEY",
        "churn-s3-reader/AWS_SECRET_ACCESS_KEY",
        "churn-s3-predlog/AWS_SECRET_ACCESS_KEY",
        "churn-minio-root/MINIO_ROOT_PASSWORD",
        "churn-mlflow-admin/MLFLOW_AUTH_ADMIN_PASSWORD",
        "churn-mlflow-admin/MLFLOW_FLASK_SERVER_SECRET_KEY",
        "churn-pushgateway/password",
        *(f"churn-mlflow-{role}/MLFLOW_TRACKING_PASSWORD" for role in ("pipeline", "gate", "reader")),
    }
    assert wanted <= set(found)
    chart_text = "\n".join(p.read_text() for p in CHART.rglob("*") if p.is_file())
    assert "change-me-please" not in chart_text
    for where, value in found.items():
        assert value not in chart_text, where
        if "SECRET" in where or "PASSWORD" in where or where.endswith("/password"):
            assert len(value) >= 32, where
    # Both namespaces get the same generated values; no two credentials are the same.
    secrets = _secrets(objects)
    assert secrets["churn-s3", "ml"] == secrets["churn-s3", "kubeflow"]
    assert secrets["churn-mlflow-gate", "ml"] == secrets["churn-mlflow-gate", "kubeflow"]
    passwords = [v for k, v in found.items() if not k.endswith(("ACCESS_KEY_ID", "ROOT_USER"))]
    assert len(set(passwords)) == len(passwords)
    again = _credentials(_render(helm, CHART))
    for where, value in again.items():
        assert value != found[where], f"two installs share {where}"


def test_given_credentials_are_used_and_existing_secrets_render_none(helm: str) -> None:
    given = _secrets(
        _render(
            helm,
            CHART,
            *("--set", "s3.accessKey=team-a", "--set", "s3.secretKey=s3-given-key"),
            *("--set", "minio.rootPassword=root-given-key", "--set", "mlflow.auth.adminPassword=admin-given-key"),
            *("--set", "pushgateway.auth.password=push-given-key"),
        )
    )
    assert given["churn-s3", "ml"] == {"AWS_ACCESS_KEY_ID": "team-a", "AWS_SECRET_ACCESS_KEY": "s3-given-key"}
    assert given["churn-minio-root", "ml"]["MINIO_ROOT_PASSWORD"] == "root-given-key"
    assert given["churn-mlflow-admin", "ml"]["MLFLOW_AUTH_ADMIN_PASSWORD"] == "admin-given-key"
    assert given["churn-pushgateway", "ml"]["password"] == "push-given-key"
    existing = _render(helm, CHART, "--set", "s3.existingSecret=mine", "--set", "s3.readerExistingSecret=mine-ro")
    names = {name for name, _ in _secrets(existing)}
    assert not {"churn-s3", "churn-s3-reader"} & names
    account = next(o for o in existing if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == "churn-models")
    assert account["secrets"] == [{"name": "mine-ro"}]


def test_the_pushgateway_web_config_holds_only_a_bcrypt_hash_of_the_users_password(helm: str) -> None:
    secrets = _secrets(_render(helm))
    user = secrets["churn-pushgateway", "ml"]
    web = yaml.safe_load(secrets["churn-pushgateway-web", "ml"]["web-config.yml"])
    (hashed,) = web["basic_auth_users"].values()
    assert list(web["basic_auth_users"]) == [user["username"]]
    assert user["password"] not in hashed and bcrypt.checkpw(user["password"].encode(), hashed.encode())
    assert not bcrypt.checkpw(b"anything-else", hashed.encode())


def test_the_minio_policies_are_valid_and_least_privilege(helm: str) -> None:
    """Syntax by moto's IAM policy validator; scope: one bucket, and the reader gets reads only."""
    objects = _render(helm, CHART, "--set", "s3.bucket=models")
    (config,) = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "churn-minio-policies"]
    policies = {name: json.loads(text) for name, text in config["data"].items()}
    assert set(policies) == {"churn-readwrite.json", "churn-readonly.json", "churn-predlog.json"}
    actions: dict[str, set[str]] = {}
    for name, policy in policies.items():
        IAMPolicyDocumentValidator(json.dumps(policy)).validate()  # raises on a malformed policy
        for statement in policy["Statement"]:
            assert statement["Effect"] == "Allow" and "*" not in json.dumps(statement["Action"])
            allowed = {"arn:aws:s3:::models", "arn:aws:s3:::models/*", "arn:aws:s3:::models/predictions/*"}
            assert set(statement["Resource"]) <= allowed, name
            actions.setdefault(name, set()).update(statement["Action"])
    reads = {"s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation"}
    assert actions["churn-readonly.json"] == reads
    assert reads | {"s3:PutObject", "s3:DeleteObject"} <= actions["churn-readwrite.json"]
    # The prediction log's user: writes under the log's prefix, nothing else (not even reads).
    assert policies["churn-predlog.json"]["Statement"] == [
        {"Action": ["s3:PutObject"], "Effect": "Allow", "Resource": ["arn:aws:s3:::models/predictions/*"]}
    ]
    elsewhere = _render(helm, CHART, "--set", "performance.predictionLogUri=s3://lake/serving/log")
    (config,) = [o for o in elsewhere if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "churn-minio-policies"]
    assert json.loads(config["data"]["churn-predlog.json"])["Statement"][0]["Resource"] == [
        "arn:aws:s3:::lake/serving/log/*"
    ]
    # The bucket Job creates the users with their policies, as MinIO's root, which nothing else reads.
    (job,) = [o for o in objects if o["kind"] == "Job" and o["metadata"]["name"] == "churn-create-bucket"]
    script = job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    attach = ("policy attach s3 churn-readwrite", "policy attach s3 churn-readonly", "policy attach s3 churn-predlog")
    for line in (*attach, "admin user add s3"):
        assert line in script
    root_readers = [
        o["metadata"]["name"]
        for o in objects
        if o["kind"] in ("Deployment", "StatefulSet", "Job") and "churn-minio-root" in json.dumps(o)
    ]
    assert sorted(root_readers) == ["churn-create-bucket", "churn-minio"]


def test_the_committed_manifests_hold_no_secret_and_the_chart_creates_each_they_name(helm: str) -> None:
    named: dict[str, set[str]] = {}
    for path in (ROOT / "manifests").rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            assert not (doc and doc.get("kind") == "Secret"), f"{path} commits a Secret"
            _secret_references(doc, named)
    assert {"churn-s3", "churn-minio-root", "churn-mlflow-admin"} <= set(named)
    created = _secrets(_render(helm, CHART, "--namespace", "churn-mlops", "--show-only", "templates/secrets.yaml"))
    by_name = {name: set(data) for (name, _), data in created.items()}
    for name, keys in named.items():
        assert name in by_name, f"the base names Secret {name}, which templates/secrets.yaml does not create"
        assert keys <= by_name[name], f"{name} lacks {keys - by_name[name]}"


def _secret_references(node: Any, named: dict[str, set[str]]) -> None:
    """Secret name -> keys read, from secretKeyRef, secretRef, secret volumes and ServiceAccount secrets."""
    if isinstance(node, dict):
        if "secretKeyRef" in node:
            named.setdefault(node["secretKeyRef"]["name"], set()).add(node["secretKeyRef"]["key"])
        if "secretRef" in node:
            named.setdefault(node["secretRef"]["name"], set())
        if "secretName" in node:
            named.setdefault(node["secretName"], set())
        if node.get("kind") == "ServiceAccount":
            for ref in node.get("secrets", []):
                named.setdefault(ref["name"], set())
        for value in node.values():
            _secret_references(value, named)
    elif isinstance(node, list):
        for value in node:
            _secret_references(value, named)


def test_an_upgrade_keeps_what_an_install_generated(helm: str, tmp_path: Path) -> None:
    """The helper the chart feeds `lookup`'s result into, fed a Secret as a cluster would return it."""
    chart = tmp_path / "churn-mlops"
    shutil.copytree(CHART, chart)
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in (("id", "kept-id"), ("key", "kept-key-0123"))}
    keys = (
        '(dict "AWS_ACCESS_KEY_ID" (list .Values.s3.accessKey "id") '
        '"AWS_SECRET_ACCESS_KEY" (list .Values.s3.secretKey "secret"))'
    )
    (chart / "templates" / "zz-keep.yaml").write_text(
        '{{- $existing := dict "data" (dict "AWS_ACCESS_KEY_ID" "' + encoded["id"] + '" '
        '"AWS_SECRET_ACCESS_KEY" "' + encoded["key"] + '") }}\n'
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep}\ndata:\n"
        '  {{- include "churn.generatedFrom" (dict "keys" ' + keys + ' "existing" $existing) | nindent 2 }}\n'
        "---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fresh}\ndata:\n"
        '  {{- include "churn.generatedFrom" (dict "keys" ' + keys + ' "existing" dict) | nindent 2 }}\n'
    )
    maps = {o["metadata"]["name"]: o["data"] for o in _render(helm, chart) if o["kind"] == "ConfigMap"}
    assert maps["keep"] == {"AWS_ACCESS_KEY_ID": "kept-id", "AWS_SECRET_ACCESS_KEY": "kept-key-0123"}
    fresh = maps["fresh"]["AWS_SECRET_ACCESS_KEY"]
    assert fresh not in ("kept-key-0123", "") and len(fresh) >= 32
    assert maps["fresh"]["AWS_ACCESS_KEY_ID"].startswith("churn-")
    # Values given on the command line win over what the cluster holds (a deliberate rotation).
    rotated = {
        o["metadata"]["name"]: o["data"]
        for o in _render(helm, chart, "--set", "s3.secretKey=rotated-key")
        if o["kind"] == "ConfigMap"
    }
    assert rotated["keep"] == {"AWS_ACCESS_KEY_ID": "kept-id", "AWS_SECRET_ACCESS_KEY": "rotated-key"}
    # Every generated Secret goes through the one helper that asks the cluster for it by its name.
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    assert 'lookup "v1" "Secret" .root.Release.Namespace .name' in helpers
    secrets_template = (CHART / "templates" / "secrets.yaml").read_text()
    assert secrets_template.count('include "churn.generated"') + secrets_template.count("churn.s3Credentials") >= 6


def test_mlflow_runs_with_authentication_and_its_users_beside_the_runs(helm: str) -> None:
    def auth_ini(*args: str) -> str:
        return _secrets(_render(helm, CHART, *args))["churn-mlflow-auth-config", "ml"]["auth.ini"]

    objects = _render(helm)
    (server,) = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "churn-mlflow"]
    assert "--app-name=churn-auth" in server["spec"]["template"]["spec"]["containers"][0]["args"]
    ini = auth_ini()
    assert "default_permission = NO_PERMISSIONS" in ini and "database_uri = sqlite:////data/basic_auth.db" in ini
    # Verified credentials kept 60 s (each check is a scrypt hash); 0 turns the cache off.
    assert "auth_cache_ttl_seconds = 60" in ini.splitlines()
    assert "auth_cache_ttl_seconds = 0" in auth_ini("--set", "mlflow.auth.credentialCacheSeconds=0").splitlines()
    (job,) = [o for o in objects if o["kind"] == "Job" and o["metadata"]["name"] == "churn-mlflow-users"]
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["churn", "mlflow-auth", "setup"]
    # A database store: the users go to the same database (MLflow's auth has its own tables).
    database = "postgresql://mlflow:pw@db:5432/mlflow"
    assert f"database_uri = {database}" in auth_ini("--set", f"mlflow.backendStoreUri={database}")
    # The URL hidden in a Secret: the chart cannot read it, so it asks.
    done = subprocess.run(
        [helm, "template", "churn", str(CHART), "--set", "mlflow.backendStoreSecret=db-url"],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "mlflow.auth.databaseUri" in done.stderr
    off = _render(helm, CHART, "--set", "mlflow.auth.enabled=false")
    (server,) = [o for o in off if o["kind"] == "Deployment" and o["metadata"]["name"] == "churn-mlflow"]
    assert not [a for a in server["spec"]["template"]["spec"]["containers"][0]["args"] if "app-name" in a]
    assert not [o for o in off if "mlflow-admin" in o["metadata"]["name"] or "mlflow-users" in o["metadata"]["name"]]


def test_an_s3_endpoint_enforcing_the_rendered_policies_gives_each_user_only_its_share(
    helm: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto's S3 with IAM enforcement on (no MinIO binary here): the chart's three policies, attached to three users.

    moto checks each request's SigV4 signature too, so the prediction log user's writes also
    prove that the serving image's own signer (churn.storage.sigv4, no boto3) signs as S3 expects.
    """
    import socket
    import time

    import boto3
    from botocore.exceptions import ClientError

    from churn.serving.local import free_port
    from servers import BIN, stop

    objects = _render(helm)
    (config,) = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "churn-minio-policies"]
    setup_calls = 13  # the root's calls below; moto authorizes every request after them
    root = {"aws_access_key_id": "root", "aws_secret_access_key": "root-secret-for-setup"}
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, "AWS_DEFAULT_REGION": "us-east-1"}
    env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(setup_calls)
    port = free_port()
    log = (tmp_path / "moto.log").open("wb")
    process = subprocess.Popen([str(BIN / "moto_server"), "-p", str(port)], env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:  # no HTTP poll: it would count as a call
            assert time.monotonic() < deadline and process.poll() is None, "moto_server did not start"
            time.sleep(0.2)
        endpoint = {"endpoint_url": f"http://127.0.0.1:{port}", "region_name": "us-east-1"}
        s3, iam = boto3.client("s3", **endpoint, **root), boto3.client("iam", **endpoint, **root)
        for bucket in ("mlflow", "elsewhere"):  # 4 calls
            s3.create_bucket(Bucket=bucket)
            s3.put_object(Bucket=bucket, Key="model/MLmodel", Body=b"flavors: {}")
        clients = {}
        keys = {}
        for user, policy in (
            ("pipelines", "churn-readwrite.json"),
            ("storage-initializer", "churn-readonly.json"),
            ("prediction-log", "churn-predlog.json"),
        ):
            iam.create_user(UserName=user)  # 3 calls per user
            iam.put_user_policy(UserName=user, PolicyName=policy, PolicyDocument=config["data"][policy])
            key = keys[user] = iam.create_access_key(UserName=user)["AccessKey"]
            clients[user] = boto3.client(
                "s3", **endpoint, aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"]
            )

        def allowed(call: Any) -> bool:
            try:
                call()
            except ClientError as exc:
                assert exc.response["Error"]["Code"] == "AccessDenied", exc
                return False
            return True

        for user, writes in (("storage-initializer", False), ("pipelines", True)):  # the reader first: rw deletes
            c = clients[user]
            assert allowed(lambda c=c: c.get_object(Bucket="mlflow", Key="model/MLmodel")), user
            assert allowed(lambda c=c: c.list_objects_v2(Bucket="mlflow", Prefix="model/")), user
            assert allowed(lambda c=c, u=user: c.put_object(Bucket="mlflow", Key=f"runs/{u}", Body=b"x")) is writes, (
                user
            )
            assert allowed(lambda c=c: c.delete_object(Bucket="mlflow", Key="model/MLmodel")) is writes, user
            # Nothing outside the bucket, for either.
            assert not allowed(lambda c=c: c.get_object(Bucket="elsewhere", Key="model/MLmodel")), user
            assert not allowed(lambda c=c: c.put_object(Bucket="elsewhere", Key="x", Body=b"x")), user
            assert not allowed(lambda c=c, u=user: c.create_bucket(Bucket=f"new-{u}")), user
        _check_the_prediction_log_user(
            f"http://127.0.0.1:{port}", keys["prediction-log"], clients["pipelines"], allowed, monkeypatch
        )
    finally:
        stop(process)
        log.close()


def _check_the_prediction_log_user(
    endpoint: str, key: dict[str, str], pipelines: Any, allowed: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The transformer's writer, as the write-only user: it logs under the prefix and can do nothing else."""
    import numpy as np

    from churn.errors import ChurnError
    from churn.predictions.log import read_prediction_log
    from churn.predictions.logger import PredictionLogger
    from churn.storage import Location
    from churn.storage.sigv4 import S3Target, put_object

    log_env = {"AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": "us-east-1"}
    log_env |= {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
    for name, value in log_env.items():
        monkeypatch.setenv(name, value)
    logger = PredictionLogger("s3://mlflow/predictions/", model_name="churn-model", model_version="4").start()
    logger.record("req-1", ["C-1", "C-2"], np.array([0.25, 0.75]), np.array([0, 1]))
    logger.close()
    assert logger.written == 2 and logger.failed_writes == 0
    target = S3Target.from_env()
    with pytest.raises(ChurnError, match=r"s3://mlflow/models/x: HTTP 403 AccessDenied"):
        put_object(target, Location.s3("mlflow", "models/x"), b"x")
    wrong = S3Target(target.endpoint, target.region, target.access_key, "not-the-secret")
    with pytest.raises(ChurnError, match="SignatureDoesNotMatch"):
        put_object(wrong, Location.s3("mlflow", "predictions/date=2026-01-01/x.jsonl.gz"), b"x")
    log_user = boto3_client(endpoint, key)
    assert not allowed(lambda: log_user.get_object(Bucket="mlflow", Key="model/MLmodel"))
    assert not allowed(lambda: log_user.list_objects_v2(Bucket="mlflow", Prefix="predictions/"))
    # What monitoring (the read/write user) reads back is what the transformer logged.
    keys = pipelines.list_objects_v2(Bucket="mlflow", Prefix="predictions/")["Contents"]
    assert len(keys) == 1 and keys[0]["Key"].endswith(".jsonl.gz")
    import boto3

    creds = pipelines._request_signer._credentials
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds.secret_key)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # boto3 keeps the credentials its first client found
    back = read_prediction_log("s3://mlflow/predictions/")
    assert back["customer_id"].tolist() == ["C-1", "C-2"] and back["churn_label"].tolist() == [0, 1]
    assert back["churn_probability"].tolist() == [0.25, 0.75] and set(back["model_version"]) == {"4"}


def boto3_client(endpoint: str, key: dict[str, str]) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
    )
