"""How boto3's errors become a task's error: Permanent (one line naming the bucket and
the endpoint) when trying again cannot help, retried otherwise."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError

from core import Permanent
from core.jobs.net.common import TransferError
from core.jobs.net.s3 import upload_part
from core.jobs.net.s3_client import Target, failure
from tests.net.conftest import MiB, write
from tests.net.servers import MotoServer

TARGET = Target(endpoint_url="http://127.0.0.1:9000", region=None, bucket="photos", credentials="env")


class Ctx:
    attempt = 1
    max_retries = 4


def client_error(code: str, message: str, status: int) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "PutObject")


@pytest.mark.parametrize(
    ("code", "status"),
    [("InvalidAccessKeyId", 403), ("SignatureDoesNotMatch", 403), ("AccessDenied", 403), ("NoSuchKey", 404)],
)
def test_given_a_4xx_from_s3_when_mapped_then_it_is_permanent_on_one_line_naming_bucket_and_endpoint(
    code: str, status: int
) -> None:
    e = failure(
        Ctx(), client_error(code, "The request was refused.\n  Check it.", status), TARGET, "upload of a.bin"
    )
    assert isinstance(e, Permanent)
    text = str(e)
    assert "\n" not in text and "The request was refused. Check it." in text
    assert (
        "bucket 'photos' at http://127.0.0.1:9000" in text
        and f"S3 {code}" in text
        and "upload of a.bin" in text
    )


def test_given_a_5xx_or_a_dropped_connection_when_mapped_then_it_is_retried() -> None:
    assert isinstance(
        failure(Ctx(), client_error("InternalError", "oops", 500), TARGET, "part 2"), TransferError
    )
    dropped = ConnectionClosedError(endpoint_url="http://127.0.0.1:9000/photos/a.bin?X-Amz-Signature=abc")
    e = failure(Ctx(), dropped, TARGET, "part 2")
    assert isinstance(e, TransferError) and "abc" not in str(e) and "X-Amz-Signature=***" in str(e)


class SendingCtx(Ctx):
    """A SyncCtx without limits that runs `during` at the first draw of the sending pass."""

    def __init__(self, during: Callable[[], None]) -> None:
        self.during: Callable[[], None] | None = during

    @property
    def interrupted(self) -> bool:
        return False

    def throttle(self, nbytes: int) -> None:
        if self.during is not None:
            self.during()
            self.during = None

    def progress(self, *args: object, **kwargs: object) -> None:
        pass

    def record_io(self, *args: object, **kwargs: object) -> None:
        pass

    def yield_point(self) -> None:
        pass


def test_given_a_file_written_while_its_part_is_sent_when_the_part_ends_then_it_fails_for_good(
    moto: MotoServer, s3: Any, bucket: str, tmp_path: Path
) -> None:
    """Its bytes match what was sent, so the server accepts the part: only the file tells."""
    path = tmp_path / "a.bin"
    write(path, MiB)
    st = path.stat()
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="a.bin")["UploadId"]
    payload = {"bucket": bucket, "endpoint_url": moto.url, "credentials": "env", "path": str(path), "key": "a.bin",
               "upload_id": upload_id, "part": 1, "parts": 1, "offset": 0, "size": MiB, "file_size": MiB,
               "mtime_ns": st.st_mtime_ns}  # fmt: skip
    ctx = SendingCtx(lambda: os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000)))
    with pytest.raises(Permanent, match=r"a\.bin changed while it was being sent"):
        upload_part(ctx, payload)  # type: ignore[arg-type]
    assert ctx.during is None  # the write did happen mid-send
