"""Run one task of a built-in kind in a process of its own and print how it ended:

    python -m tests.jobs.run_kind DB KIND PAYLOAD_JSON   ->   {"state", "error", "result", "logs"}

For the cases a test must run with other privileges than its own (as root, a file with
mode 000 is readable: the test runs this without CAP_DAC_OVERRIDE)."""

from __future__ import annotations

import asyncio
import json
import sys

from core import Engine
from core.jobs import register_builtin


async def main(db: str, kind: str, payload: str) -> None:
    engine = await Engine.open(db)
    try:
        register_builtin(engine)
        await engine.start()
        res = await engine.submit(kind, json.loads(payload))
        rec = await engine.wait(res.id, timeout=60)
        logs = [f"{line.level}: {line.message}" for line in engine.logs(res.id)]
    finally:
        await engine.stop(grace=0)
    out = {"state": rec.state.value, "error": rec.error, "result": rec.result, "logs": logs}
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
