"""Turning boto3's many exceptions into the storage errors callers can act on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from boto3.exceptions import RetriesExceededError
from botocore.exceptions import (
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from voxflow.storage.base import StorageConfigError, StorageUnavailableError

_DENIED = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled", "403"}
)
_NOT_FOUND = frozenset({"NoSuchKey", "NotFound", "404"})
# Answers that mean "not now" rather than "not like this" (botocore has already retried them).
_TRANSIENT = frozenset({"SlowDown", "RequestTimeout", "ServiceUnavailable", "InternalError"})


def error_code(exc: ClientError) -> str:
    """The S3 error code of a failed request (`NoSuchKey`, or `404` for a HEAD)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def http_status(exc: ClientError) -> int:
    """The HTTP status of a failed request."""
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def is_not_found(exc: ClientError) -> bool:
    """Whether the request failed because an object (or, for a HEAD, the bucket) is missing."""
    return error_code(exc) in _NOT_FOUND or http_status(exc) == 404


@contextmanager
def translated(where: str) -> Iterator[None]:
    """Raise StorageConfigError or StorageUnavailableError for failures that mean one of them."""
    try:
        yield
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise StorageConfigError(
            f"no credentials for {where}: set VOXFLOW_S3_ACCESS_KEY_ID and "
            "VOXFLOW_S3_SECRET_ACCESS_KEY, or give the process a role (IAM, IRSA)"
        ) from exc
    except ClientError as exc:
        code, status = error_code(exc), http_status(exc)
        if code == "NoSuchBucket":
            raise StorageConfigError(f"bucket {where} does not exist") from exc
        if code in _DENIED or status == 403:
            raise StorageConfigError(
                f"access to {where} denied ({code}): check the credentials and the policy"
            ) from exc
        if code in _TRANSIENT or status >= 500:
            raise StorageUnavailableError(f"{where} failed: {exc}") from exc
        raise
    except (BotoConnectionError, HTTPClientError, RetriesExceededError) as exc:
        raise StorageUnavailableError(f"cannot reach {where}: {exc}") from exc
