"""`upload.s3`: files and folders to a bucket on any S3-compatible endpoint (boto3).

One task per upload. Its handler (in a thread) lists the files, starts a multipart upload
for each file at or above `multipart_threshold` and spawns one child per part
(`upload.s3.part`) and one per smaller file (`upload.s3.object`); then it returns and the
task waits, holding no slot, while the children run in parallel under the engine's
limits. The parent row reads "part 7 of 20". Its finalize completes each multipart upload
with the ETags its parts returned, and checks the object's ETag against the MD5s of what
was sent. A lone small file is sent by the handler itself.

Resuming: the upload ids are checkpointed as soon as they exist, then kept as the
handler's result while the task waits; each finished part is a completed child whose
result holds its ETag. After a pause or a crash only unfinished parts run again (the
engine re-runs children that had not completed), and finalize completes the upload from
what the children returned: a finished part is never sent twice. Cancelling the task, or
its failing for good, runs the `cleanup` hook, which aborts every multipart upload the task
started, so no orphan parts stay on the server.

Why boto3 and not aiobotocore: see s3_client.
"""

from __future__ import annotations

import asyncio
import functools
import mimetypes
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from core import ChildOutcome, Engine, IoBudget, Permanent, Submission, TaskContext, TaskState
from core.jobs.common import titled
from core.jobs.net.common import (
    BANDWIDTH_SCHEMA,
    CREDENTIALS_SCHEMA,
    INPUTS_SCHEMA,
    RETRY,
    LocalFile,
    SyncCtx,
    check_unchanged,
    collect_files,
    format_bytes,
    host_of,
    local_path,
    path_field,
    schema_defs,
    url_schema,
)
from core.jobs.net.s3_client import (
    MD5_ETAG,
    MULTI_ETAG,
    Target,
    abort_all,
    botocore_exceptions,
    call,
    checksum_args,
    connect,
    etag_of,
    failure,
    multipart_etag,
    send_slice,
)

KIND = "upload.s3"
PART = "upload.s3.part"
OBJECT = "upload.s3.object"
COMPLETE = "upload.s3.complete"

MiB = 1024 * 1024
MIN_PART = 5 * MiB  # S3's smallest part (but the last)
MAX_PART = 5 * 1024 * MiB
MAX_PARTS = 10_000
DEFAULT_PART = 8 * MiB
DEFAULT_THRESHOLD = 8 * MiB
MAX_LISTED = 1000  # objects named in a result; the counts cover the rest

_TARGET_PROPS: dict[str, Any] = {
    "endpoint_url": url_schema("the S3-compatible endpoint (default: AWS)"),
    "region": {
        "type": "string",
        "pattern": "^[a-z0-9-]{1,64}$",
        "description": "the region name: lowercase letters, digits and '-' (eu-west-1)",
    },
    "bucket": {
        "type": "string",
        "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$",
        "description": "the bucket's name: letters, digits and '.', '_', '-' (not first)",
    },
    "credentials": CREDENTIALS_SCHEMA,
    "bandwidth_limit": BANDWIDTH_SCHEMA,
}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "$defs": schema_defs(),
    "required": ["inputs", "bucket"],
    "properties": {
        "inputs": INPUTS_SCHEMA,
        **_TARGET_PROPS,
        "prefix": {
            "type": "string",
            "maxLength": 900,
            "description": "key prefix, a folder in the bucket (default: the bucket's top)",
        },
        "part_size": {
            "type": "integer",
            "minimum": MIN_PART,
            "maximum": MAX_PART,
            "description": "bytes per part of a multipart upload (8 MiB)",
        },
        "multipart_threshold": {
            "type": "integer",
            "minimum": MIN_PART,
            "maximum": MAX_PART,
            "description": "files this large or larger go in parts (8 MiB)",
        },
        "content_type": {"type": "string", "maxLength": 256, "description": "default: from the name"},
    },
    "additionalProperties": False,
}
titled(
    SCHEMA,
    {
        "inputs": "Files",
        "endpoint_url": "Endpoint",
        "region": "Region",
        "bucket": "Bucket",
        "credentials": "Credentials",
        "bandwidth_limit": "Bandwidth limit (bytes/s)",
        "prefix": "Folder in the bucket",
        "part_size": "Part size (bytes)",
        "multipart_threshold": "Multipart from (bytes)",
        "content_type": "Content type",
    },
)

_CHILD_COMMON: dict[str, Any] = {
    **_TARGET_PROPS,
    "path": {"type": "string", "minLength": 1},
    "key": {"type": "string", "minLength": 1, "maxLength": 1024},
    "file": {"type": "integer", "minimum": 0},
    "file_size": {"type": "integer", "minimum": 0},
    "mtime_ns": {"type": "integer"},
    "content_type": {"type": "string"},
}
PART_SCHEMA: dict[str, Any] = {
    "type": "object",
    "$defs": schema_defs(),
    "required": [
        "bucket",
        "path",
        "key",
        "upload_id",
        "part",
        "parts",
        "offset",
        "size",
        "file_size",
        "mtime_ns",
    ],
    "properties": {
        **_CHILD_COMMON,
        "upload_id": {"type": "string", "minLength": 1},
        "part": {"type": "integer", "minimum": 1, "maximum": MAX_PARTS},
        "parts": {"type": "integer", "minimum": 1, "maximum": MAX_PARTS},
        "offset": {"type": "integer", "minimum": 0},
        "size": {"type": "integer", "minimum": 0},
    },
    "additionalProperties": False,
}
COMPLETE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "$defs": schema_defs(),
    "required": ["bucket", "key", "upload_id", "parts", "file_size"],
    "properties": {
        **_TARGET_PROPS,
        "key": {"type": "string", "minLength": 1, "maxLength": 1024},
        "upload_id": {"type": "string", "minLength": 1},
        "parts": {"type": "integer", "minimum": 1, "maximum": MAX_PARTS},
        "file": {"type": "integer", "minimum": 0},
        "file_size": {"type": "integer", "minimum": 0},
    },
    "additionalProperties": False,
}
OBJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "$defs": schema_defs(),
    "required": ["bucket", "path", "key", "file_size", "mtime_ns"],
    "properties": _CHILD_COMMON,
    "additionalProperties": False,
}


def group_for(payload: Mapping[str, Any]) -> str:
    """The default group of an upload: the endpoint's host (one switch per server)."""
    endpoint = payload.get("endpoint_url")
    if endpoint:
        return host_of(endpoint)
    region = payload.get("region")
    return f"s3.{region}.amazonaws.com" if region else "s3.amazonaws.com"


def normalized_prefix(prefix: str | None) -> str:
    """ "photos" and "/photos/" both mean the folder photos/ in the bucket."""
    p = (prefix or "").strip().lstrip("/")
    return p + "/" if p and not p.endswith("/") else p


def key_for(prefix: str, f: LocalFile) -> str:
    return normalized_prefix(prefix) + f.rel


def fit_part_size(size: int, part_size: int) -> int:
    """`part_size`, raised (to a whole MiB) when the file would need more than 10,000 parts."""
    if -(-size // part_size) <= MAX_PARTS:
        return part_size
    need = -(-size // MAX_PARTS)
    return min(MAX_PART, -(-need // MiB) * MiB)


def part_ranges(size: int, part_size: int) -> list[tuple[int, int]]:
    """(offset, length) of each part; an empty file is one empty part."""
    if size == 0:
        return [(0, 0)]
    return [(off, min(part_size, size - off)) for off in range(0, size, part_size)]


def _content_type(payload: Mapping[str, Any], path: str) -> str | None:
    given = payload.get("content_type")
    if given:
        return str(given)
    guessed, _ = mimetypes.guess_type(path)
    return guessed


def upload_object(ctx: SyncCtx, payload: dict[str, Any]) -> dict[str, Any]:
    """`upload.s3.object`: one small file of an upload, in one PutObject."""
    target = Target.of(payload)
    path = local_path(payload["path"])
    check_unchanged(path, payload["file_size"], payload["mtime_ns"])
    client = connect(ctx, target)
    key = payload["key"]
    sent = send_slice(
        ctx,
        client,
        target,
        path=path,
        key=key,
        offset=0,
        size=payload["file_size"],
        label=f"uploading {os.path.basename(key)}",
        content_type=_content_type(payload, path),
    )
    check_unchanged(path, payload["file_size"], payload["mtime_ns"], sent=True)
    return {"file": payload.get("file", 0), "key": key, "etag": sent.etag, "size": payload["file_size"]}


def upload_part(ctx: SyncCtx, payload: dict[str, Any]) -> dict[str, Any]:
    """`upload.s3.part`: one part of a multipart upload, in one UploadPart."""
    target = Target.of(payload)
    path = local_path(payload["path"])
    check_unchanged(path, payload["file_size"], payload["mtime_ns"])
    client = connect(ctx, target)
    part, parts = payload["part"], payload["parts"]
    sent = send_slice(
        ctx,
        client,
        target,
        path=path,
        key=payload["key"],
        offset=payload["offset"],
        size=payload["size"],
        label=f"part {part} of {parts}",
        upload_id=payload["upload_id"],
        part=part,
    )
    # A part's bytes are checked against what was sent (CRC32 or MD5), not against the
    # file: a write while they went would mix old and new parts in one object.
    check_unchanged(path, payload["file_size"], payload["mtime_ns"], sent=True)
    result = {
        "file": payload.get("file", 0),
        "upload_id": payload["upload_id"],
        "part": part,
        "etag": sent.etag,
        "size": payload["size"],
    }
    if sent.crc32:
        result["crc32"] = sent.crc32
    return result


# -- the parent -------------------------------------------------------------------------


def upload(ctx: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """Upload files and folders to an S3 bucket, in parts above the threshold."""
    target = Target.of(payload)
    state: dict[str, Any] = dict(ctx.resume_data or {})
    files = collect_files(payload["inputs"])
    total = sum(f.size for f in files)
    threshold = int(payload.get("multipart_threshold", DEFAULT_THRESHOLD))
    part_size = int(payload.get("part_size", DEFAULT_PART))
    prefix = payload.get("prefix", "")
    client = connect(ctx, target)
    ctx.progress(done=0, total=total, message=f"{len(files)} file{'s' if len(files) != 1 else ''}")
    if len(files) == 1 and files[0].size < threshold:
        f = files[0]
        key = key_for(prefix, f)
        sent = send_slice(
            ctx,
            client,
            target,
            path=f.path,
            key=key,
            offset=0,
            size=f.size,
            label=f"uploading {os.path.basename(key)}",
            content_type=_content_type(payload, f.path),
        )
        ctx.log(f"uploaded {key} ({format_bytes(f.size)}) to {target.bucket}")
        # a kind with a finalize always gets there: it passes this on as the result
        return {"done": summary(target, [{"key": key, "etag": sent.etag, "size": f.size}], len(files), total)}

    # What exists already, after a pause or a crash: by object key, not file index (a
    # folder may change before a re-run). key -> upload id; keys whose children exist.
    uploads: dict[str, str] = dict(state.get("uploads", {}))
    spawned: set[str] = set(state.get("spawned", []))
    spawner = _Spawner(ctx, chained="bandwidth_limit" in payload)
    big = [f for f in files if f.size >= threshold]
    smalls: list[Submission] = []
    plan: list[dict[str, Any]] = []
    for i, f in enumerate(files):
        key = key_for(prefix, f)
        common = {**target.fields(), "path": path_field(f.path), "key": key, "file": i, "file_size": f.size,
                  "mtime_ns": f.mtime_ns}  # fmt: skip
        if "bandwidth_limit" in payload:
            common["bandwidth_limit"] = payload["bandwidth_limit"]
        name = os.path.basename(key)
        content_type = _content_type(payload, f.path)
        if f.size < threshold:
            if content_type:
                common["content_type"] = content_type
            smalls.append(Submission(OBJECT, common, key=f"{KIND}:{ctx.id}:{i}", label=name))
            continue
        upload_id = uploads.get(key)
        if upload_id is None:
            extra: dict[str, Any] = checksum_args(client)
            if content_type:
                extra["ContentType"] = content_type
            create = functools.partial(client.create_multipart_upload, Bucket=target.bucket, Key=key, **extra)
            upload_id = str(call(ctx, target, f"starting the multipart upload of {key}", create)["UploadId"])
            uploads[key] = upload_id
            # at once: a cancel or a crash from now on must find it to abort it
            ctx.checkpoint({"uploads": uploads, "spawned": sorted(spawned)})
        ranges = part_ranges(f.size, fit_part_size(f.size, part_size))
        plan.append({"file": i, "key": key, "upload_id": upload_id, "parts": len(ranges), "size": f.size})
        if key in spawned:
            continue
        ctx.yield_point()
        # This file's parts go now, while the next file's upload is being started.
        ids = spawner.spawn(
            Submission(
                PART,
                {
                    **common,
                    "upload_id": upload_id,
                    "part": n,
                    "parts": len(ranges),
                    "offset": offset,
                    "size": length,
                },
                key=f"{KIND}:{ctx.id}:{i}:{n}",
                label=f"{name} part {n} of {len(ranges)}",
            )
            for n, (offset, length) in enumerate(ranges, 1)
        )
        if len(big) > 1:
            # Completed as soon as its parts are, beside the other files' parts (with one
            # file there is nothing to overlap: finalize completes it).
            ctx.spawn_child(
                COMPLETE,
                {
                    **target.fields(),
                    "key": key,
                    "upload_id": upload_id,
                    "parts": len(ranges),
                    "file": i,
                    "file_size": f.size,
                },
                key=f"{KIND}:{ctx.id}:{i}:complete",
                label=f"{name}: complete",
                depends_on=tuple(ids),
            )
        spawned.add(key)
        ctx.checkpoint({"uploads": uploads, "spawned": sorted(spawned)})
    if smalls and not state.get("smalls"):
        spawner.spawn(smalls)
        ctx.checkpoint({"uploads": uploads, "spawned": sorted(spawned), "smalls": True})
    ctx.log(
        f"{len(files)} file{'s' if len(files) != 1 else ''} ({format_bytes(total)}) to {target.bucket}: "
        f"{len(plan)} in parts, {len(smalls)} in one request each"
    )
    # Kept as this task's result while it waits: finalize completes these uploads, and
    # cleanup aborts them (the engine drops the checkpoint once the handler returns).
    return {"uploads": plan, "files": len(files), "bytes": total}


class _Spawner:
    """Spawns the children (their dedup keys make a second try after a crash harmless).
    With the task's own bandwidth_limit they go one after another, each waiting for the
    one before, so the limit holds for the task as a whole and not per part."""

    def __init__(self, ctx: Any, *, chained: bool) -> None:
        self.ctx = ctx
        self.chained = chained
        self.previous: int | None = None

    def spawn(self, subs: Iterable[Submission]) -> list[int]:
        if not self.chained:
            return [r.id for r in self.ctx.spawn_children(list(subs))]
        ids = []
        for sub in subs:
            after = (self.previous,) if self.previous is not None else ()
            result = self.ctx.spawn_child(
                sub.kind, sub.payload, key=sub.key, label=sub.label, depends_on=after
            )
            self.previous = result.id
            ids.append(result.id)
        return ids


def summary(target: Target, objects: list[dict[str, Any]], files: int, total: int) -> dict[str, Any]:
    return {
        "bucket": target.bucket,
        "endpoint_url": target.endpoint_url,
        "files": files,
        "bytes": total,
        "objects": objects[:MAX_LISTED],
    }


def _plan_of(engine: Engine, task_id: int) -> dict[str, Any]:
    rec = engine.get(task_id)
    result = rec.result if rec is not None else None
    return result if isinstance(result, dict) else {}


def _expected_etag(parts: Sequence[Mapping[str, Any]]) -> str | None:
    """The ETag the parts make: each part's ETag is the server's MD5 of it (its bytes were
    checked as they went), and the object's is made of exactly these (None when the
    server's ETags are no MD5s)."""
    etags = [str(p["etag"]) for p in parts]
    return multipart_etag(etags) if all(MD5_ETAG.match(e) for e in etags) else None


def _ordered_parts(key: str, upload_id: str, count: int, results: Iterable[Any]) -> list[dict[str, Any]]:
    got = {
        int(r["part"]): r
        for r in results
        if isinstance(r, dict) and r.get("upload_id") == upload_id and "part" in r
    }
    missing = [n for n in range(1, count + 1) if n not in got]
    if missing:
        raise Permanent(f"{key}: part {missing[0]} of {count} was never uploaded")
    return [got[n] for n in range(1, count + 1)]


async def complete_upload(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
    """`upload.s3.complete`: complete one multipart upload once its parts (its dependencies)
    are done, beside the parts of the task's other files."""
    target = Target.of(payload)
    key, upload_id = payload["key"], payload["upload_id"]
    parts = _ordered_parts(key, upload_id, int(payload["parts"]), (await ctx.dependency_results()).values())
    client = await asyncio.to_thread(connect, ctx, target)
    etag = await asyncio.to_thread(
        _complete, ctx, client, target, key, upload_id, parts, _expected_etag(parts)
    )
    return {"completed": upload_id, "key": key, "etag": etag, "size": payload["file_size"],
            "file": payload.get("file", 0)}  # fmt: skip


def make_finalize(engine: Engine) -> Callable[..., Any]:
    async def finalize(
        ctx: TaskContext, payload: dict[str, Any], children: list[ChildOutcome]
    ) -> dict[str, Any]:
        """Complete the multipart uploads no child completed, and sum up."""
        target = Target.of(payload)
        plan = _plan_of(engine, ctx.id)
        if "done" in plan:  # a lone small file, sent by the handler itself
            return dict(plan["done"])
        if "uploads" not in plan:
            raise Permanent("the upload's plan is missing (its handler did not finish)")
        failed = [c for c in children if c.state != TaskState.COMPLETED]
        if failed:
            first = failed[0]
            raise Permanent(
                f"{len(failed)} of {len(children)} requests did not complete; "
                f"task {first.id} {first.state.value}: {first.error or 'no error recorded'}"
            )
        results = [c.result for c in children if isinstance(c.result, dict)]
        done: dict[str, str] = {r["completed"]: r["etag"] for r in results if "completed" in r}  # id -> ETag
        done.update((ctx.resume_data or {}).get("completed", {}))
        objects = [
            {"key": r["key"], "etag": r["etag"], "size": r["size"], "file": r["file"]}
            for r in results
            if "key" in r and "completed" not in r
        ]
        client: Any = None
        for up in plan["uploads"]:
            await ctx.yield_point()
            key, upload_id = up["key"], up["upload_id"]
            if upload_id not in done:
                parts = _ordered_parts(key, upload_id, int(up["parts"]), results)
                if client is None:
                    client = await asyncio.to_thread(connect, ctx, target)
                expected = _expected_etag(parts)
                done[upload_id] = await asyncio.to_thread(
                    _complete, ctx, client, target, key, upload_id, parts, expected
                )
                await ctx.checkpoint({"completed": done})
                ctx.progress(message=f"completed {key}")
            objects.append({"key": key, "etag": done[upload_id], "size": up["size"], "file": int(up["file"])})
        objects.sort(key=lambda o: o.pop("file"))
        ctx.log(f"uploaded {plan['files']} files ({format_bytes(plan['bytes'])}) to {target.bucket}")
        return summary(target, objects, int(plan["files"]), int(plan["bytes"]))

    return finalize


def _complete(
    ctx: Any,
    client: Any,
    target: Target,
    key: str,
    upload_id: str,
    parts: list[dict[str, Any]],
    expected: str | None,
) -> str:
    """CompleteMultipartUpload, then check the object: its ETag is the one its parts make
    (`expected`), or, where ETags are no MD5s (e.g. KMS), its size is what was sent. An
    upload an earlier try completed (finalize crashed after the request) is checked alike."""
    ClientError = botocore_exceptions().ClientError
    what = f"completing the multipart upload of {key}"
    size = sum(int(p["size"]) for p in parts)

    def head() -> dict[str, Any]:
        out: dict[str, Any] = call(
            ctx, target, f"checking {key}", lambda: client.head_object(Bucket=target.bucket, Key=key)
        )
        return out

    try:
        response = client.complete_multipart_upload(
            Bucket=target.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [_completed_part(p) for p in parts]},
        )
        etag = etag_of(response.get("ETag"))
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") != "NoSuchUpload":
            raise failure(ctx, e, target, what) from e
        etag = etag_of(head().get("ETag"))
        if expected is not None and etag != expected:
            raise Permanent(f"{what}: the upload is gone and {key} is not what was sent") from e
    except Exception as e:
        mapped = failure(ctx, e, target, what)
        if mapped is e:
            raise
        raise mapped from e
    if expected is not None and MULTI_ETAG.match(etag):
        if etag != expected:
            raise Permanent(f"{key}: the server assembled other parts (ETag {etag}, expected {expected})")
    else:
        stored = int(head().get("ContentLength", -1))
        if stored != size:
            raise Permanent(f"{key}: the server holds {stored} bytes, {size} were sent")
    return etag


def _completed_part(p: Mapping[str, Any]) -> dict[str, Any]:
    out = {"ETag": p["etag"], "PartNumber": p["part"]}
    if p.get("crc32"):
        out["ChecksumCRC32"] = p["crc32"]
    return out


def make_cleanup(engine: Engine) -> Callable[..., Any]:
    async def cleanup(ctx: TaskContext, payload: dict[str, Any], reason: str) -> None:
        """Abort the multipart uploads the task started (cancelled or failed for good)."""
        uploads: dict[str, str] = {}  # upload id -> key
        for key, upload_id in ((ctx.resume_data or {}).get("uploads") or {}).items():
            uploads[str(upload_id)] = str(key)
        for up in _plan_of(engine, ctx.id).get("uploads", []):
            uploads[str(up["upload_id"])] = str(up["key"])
        if not uploads:
            return
        target = Target.of(payload)
        aborted, failed = await asyncio.to_thread(abort_all, target, uploads)
        if aborted:
            ctx.log(
                f"{reason}: aborted {aborted} multipart upload{'s' if aborted != 1 else ''} on {target.where}"
            )
        for key, why in failed:  # said in the task's log, where the user looks, not only in ours
            ctx.log(
                f"{reason}: could not abort the multipart upload of {key} ({why}); its parts stay in "
                f"bucket {target.bucket!r} until it is aborted there or a lifecycle rule expires it",
                level="error",
            )

    return cleanup


# The requests of one upload declare a zero IO budget: what they may use of the network is
# the business of the bandwidth limits (and the group of the endpoint's host, and the
# concurrency), not of the IO gate. That gate learns a capacity from the fastest rate it
# has seen and defers work past 80% of it, so a multipart upload measured at one stream's
# rate would be held to one stream for good.
NOT_IO_GATED = IoBudget()


def register(engine: Engine, **hooks: Any) -> None:
    """`hooks`: the submit-time validate and defaults of the kind (see core.jobs.net)."""
    engine.register(
        KIND,
        upload,
        run_in="thread",
        retry=RETRY,
        schema=SCHEMA,
        finalize=make_finalize(engine),
        cleanup=make_cleanup(engine),
        description="Upload files and folders to an S3-compatible bucket (multipart above a threshold)",
        **hooks,
    )
    engine.register(
        PART,
        upload_part,
        run_in="thread",
        retry=RETRY,
        schema=PART_SCHEMA,
        io=NOT_IO_GATED,
        description="One part of an upload.s3 multipart upload (spawned by upload.s3)",
    )
    engine.register(
        COMPLETE,
        complete_upload,
        retry=RETRY,
        schema=COMPLETE_SCHEMA,
        io=NOT_IO_GATED,
        description="Completes one multipart upload of an upload.s3 task (spawned by upload.s3)",
    )
    engine.register(
        OBJECT,
        upload_object,
        run_in="thread",
        retry=RETRY,
        schema=OBJECT_SCHEMA,
        io=NOT_IO_GATED,
        description="One small file of an upload.s3 task (spawned by upload.s3)",
    )
