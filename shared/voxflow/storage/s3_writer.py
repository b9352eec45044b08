"""A streamed S3 upload: parts are sent as they fill, the object appears only on completion."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client
    from types_boto3_s3.type_defs import CompletedPartTypeDef

log = logging.getLogger(__name__)

MAX_PARTS = 10_000  # S3's limit per multipart upload


class MultipartWriter:
    """Buffers one part in memory; small objects go up in a single PUT on completion."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        name: str,
        part_bytes: int,
        extra_args: Mapping[str, str],
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.name = name
        self.part_bytes = part_bytes
        self.extra_args: dict[str, Any] = dict(extra_args)
        self.upload_id: str | None = None
        self.parts: list[CompletedPartTypeDef] = []
        self.buffer = bytearray()
        self.size = 0

    def write(self, data: bytes, /) -> int:
        """Take `data`; send every full part (all parts but the last must be the same size)."""
        self.buffer += data
        self.size += len(data)
        while len(self.buffer) >= self.part_bytes:
            self._send_part(bytes(self.buffer[: self.part_bytes]))
            del self.buffer[: self.part_bytes]
        return len(data)

    def _send_part(self, body: bytes) -> None:
        if self.upload_id is None:
            created = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=self.name, **self.extra_args
            )
            self.upload_id = created["UploadId"]
        number = len(self.parts) + 1
        if number > MAX_PARTS:
            raise ValueError(
                f"object larger than {MAX_PARTS} parts of {self.part_bytes} bytes; raise "
                "VOXFLOW_S3_MULTIPART_CHUNK_BYTES"
            )
        sent = self.client.upload_part(
            Bucket=self.bucket, Key=self.name, UploadId=self.upload_id,
            PartNumber=number, Body=body,
        )  # fmt: skip
        self.parts.append({"PartNumber": number, "ETag": sent["ETag"]})

    def complete(self) -> None:
        """Make the object visible: one PUT if no part was sent yet, else the last part."""
        if self.upload_id is None:
            self.client.put_object(
                Bucket=self.bucket, Key=self.name, Body=bytes(self.buffer), **self.extra_args
            )
        else:
            if self.buffer:
                self._send_part(bytes(self.buffer))
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=self.name, UploadId=self.upload_id,
                MultipartUpload={"Parts": self.parts},
            )  # fmt: skip
        self.buffer.clear()

    def abort(self) -> None:
        """Drop the parts sent so far; S3 then holds nothing of this upload."""
        self.buffer.clear()
        if self.upload_id is None:
            return
        try:
            self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=self.name, UploadId=self.upload_id
            )
        except Exception:
            # The original error matters more; the bucket's lifecycle rule for incomplete
            # multipart uploads removes what could not be aborted (docs/storage.md).
            log.warning(
                "could not abort multipart upload %s of %s", self.upload_id, self.name,
                exc_info=True,
            )  # fmt: skip
