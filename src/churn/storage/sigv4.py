"""One S3 ``PUT`` signed with AWS Signature Version 4, on the standard library alone.

The serving image writes the prediction log with this instead of boto3 (botocore alone is
~30 MB installed, for one call). It signs exactly what botocore signs for a path-style
``PutObject`` (``host``, ``x-amz-content-sha256`` with the body's SHA-256, ``x-amz-date``,
and ``x-amz-security-token`` when there is one), so MinIO and AWS S3 check it the same way.

Endpoint, region and credentials follow :func:`churn.storage.s3.s3_settings` (the one rule
boto3 and Arrow are configured with too; AWS's regional endpoint when no endpoint is set):
what the chart's S3 Secret and settings give a pod. The static keys are required here: other
sources of boto3's credential chain (profiles, instance roles, web identity) are not read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from churn.errors import ChurnError
from churn.storage.location import Location
from churn.storage.s3 import s3_settings

ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True)
class S3Target:
    """Where and as whom to write: endpoint URL, region and static credentials."""

    endpoint: str
    region: str
    access_key: str
    secret_key: str
    session_token: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> S3Target:
        """The target the ``AWS_*`` environment describes (:func:`churn.storage.s3.s3_settings`).

        Raises:
            ChurnError: No access key or secret key is set.

        """
        settings = s3_settings(environ)
        names = {"AWS_ACCESS_KEY_ID": settings.access_key, "AWS_SECRET_ACCESS_KEY": settings.secret_key}
        missing = [name for name, value in names.items() if not value]
        if missing:
            raise ChurnError(f"writing to S3 needs the environment variable(s) {', '.join(missing)}")
        return cls(
            endpoint=(settings.endpoint or f"https://s3.{settings.region}.amazonaws.com").rstrip("/"),
            region=settings.region,
            access_key=settings.access_key,
            secret_key=settings.secret_key,
            session_token=settings.session_token,
        )


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signed_headers(
    target: S3Target, method: str, host: str, path: str, payload_sha256: str, now: dt.datetime
) -> dict[str, str]:
    """The headers of a SigV4-signed S3 request (``path`` already URI-encoded), ``Authorization`` included."""
    amz_date = now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    headers = {"host": host, "x-amz-content-sha256": payload_sha256, "x-amz-date": amz_date}
    if target.session_token:
        headers["x-amz-security-token"] = target.session_token
    names = sorted(headers)
    canonical = "\n".join(
        [method, path, "", *(f"{name}:{headers[name].strip()}" for name in names), "", ";".join(names), payload_sha256]
    )
    scope = f"{day}/{target.region}/s3/aws4_request"
    to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{target.secret_key}".encode(), day), target.region), "s3"), "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (
        f"{ALGORITHM} Credential={target.access_key}/{scope}, SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return headers


def put_object(target: S3Target, where: Location, body: bytes, *, timeout: float = 10.0) -> None:
    """Store ``body`` as the object ``where`` in one ``PUT`` (path-style; S3 shows the object whole or not at all).

    Raises:
        ChurnError: The endpoint cannot be reached or refuses the object (its status and S3 error code).

    """
    url = urlsplit(target.endpoint)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ChurnError(f"S3 endpoint {target.endpoint!r} is not an http:// or https:// URL")
    default_port = 443 if url.scheme == "https" else 80
    host = url.hostname if url.port in (None, default_port) else f"{url.hostname}:{url.port}"
    path = quote(f"{url.path.rstrip('/')}/{where.bucket}/{where.key}", safe="/~")
    headers = signed_headers(target, "PUT", host, path, hashlib.sha256(body).hexdigest(), dt.datetime.now(dt.UTC))
    connection_type = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    connection = connection_type(url.hostname, url.port or default_port, timeout=timeout)
    try:
        connection.request("PUT", path, body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read()
    except OSError as exc:
        raise ChurnError(f"cannot write {where}: S3 endpoint {target.endpoint} unreachable ({exc})") from None
    finally:
        connection.close()
    if response.status // 100 != 2:
        text = answer.decode("utf-8", "replace")
        code = re.search(r"<Code>(.*?)</Code>", text)
        message = re.search(r"<Message>(.*?)</Message>", text)
        detail = ": ".join(m.group(1) for m in (code, message) if m) or text[:200]
        raise ChurnError(f"S3 refused {where}: HTTP {response.status} {detail}")
