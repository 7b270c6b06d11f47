"""The public surface of core: what SPEC §3 names is importable; core never loads Qt."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import core
from core import Engine, EngineLocked

SPEC_NAMES = {
    "Engine", "EngineConfig", "Priority", "RetryPolicy", "IoBudget", "TaskContext", "Client",
    "Submission", "SubmitResult", "SubmitOutcome", "TaskRecord", "TaskState", "Event", "EventKind",
    "Permanent", "Interrupted", "InvalidSubmission", "UnknownKind", "EngineLocked", "InvalidState",
    "InvalidDependency", "DependencyFailed", "SchemaTooNew", "TaskdeckError",
}  # fmt: skip


def test_given_the_spec_then_every_name_it_uses_is_exported() -> None:
    assert set(core.__all__) >= SPEC_NAMES
    for name in core.__all__:
        assert getattr(core, name) is not None, name


def test_given_core_is_imported_then_no_qt_module_is_loaded() -> None:
    code = "import sys, core, core.jobs, core.cli; print([m for m in sys.modules if 'PySide' in m or 'qasync' in m])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_given_errors_then_they_derive_from_taskdeck_error_and_the_builtin_they_resemble() -> None:
    assert issubclass(core.InvalidSubmission, ValueError)
    assert issubclass(core.TaskNotFound, LookupError)
    assert issubclass(core.WaitTimeout, TimeoutError)
    for name in core.__all__:
        obj = getattr(core, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, core.TaskdeckError), name


@pytest.mark.crash
def test_given_an_engine_in_another_process_then_open_raises_engine_locked_with_its_pid(
    tmp_path: Path,
) -> None:
    db = tmp_path / "tasks.db"
    holder = textwrap.dedent(
        f"""
        import asyncio, os, sys
        from core import Engine
        async def main():
            eng = await Engine.open({str(db)!r})
            print(os.getpid(), flush=True)
            sys.stdin.readline()
            await eng.stop()
        asyncio.run(main())
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            pid = int(proc.stdout.readline())
            with pytest.raises(EngineLocked) as info:
                asyncio.run(_open_and_stop(db))
            assert info.value.pid == pid and f"process {pid}" in str(info.value)
        finally:
            proc.kill()
    # the lock died with the process: no stale lock file blocks the next open
    asyncio.run(_open_and_stop(db))


async def _open_and_stop(db: Path) -> None:
    eng = await Engine.open(db)
    await eng.stop()


def test_given_kinds_then_they_publish_json_ready_schemas() -> None:
    from core.jobs import register_builtin

    async def main() -> list:
        eng = await Engine.open(":memory:")
        register_builtin(eng)
        kinds = eng.kinds()
        await eng.stop()
        return kinds

    kinds = asyncio.run(main())
    demo = next(k for k in kinds if k.kind == "demo.sleep")
    json.dumps(demo.schema)
    assert demo.schema["properties"]["seconds"]["type"] == "number"
