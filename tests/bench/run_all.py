"""Run every benchmark, each in its own process (clean RSS and CPU figures), and print the
JSON line each one prints. Benchmarks report; they never gate: the exit status is 0.

    .venv/bin/python -m tests.bench.run_all [--quick] [--only e2e,latency] [--out results.jsonl]

--quick runs smaller N once per figure (a smoke test: all of them in well under a minute).
--profile adds bench_e2e's cProfile (top 25 by tottime) to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from tests.bench.common import REPO, last_json, machine

# Issue #3's benchmarks first, in this order; any other tests/bench/bench_<name>.py after them.
ORDER = ("e2e", "batch", "latency", "backlog", "subscriber", "idle", "recovery", "memory")


def discover() -> tuple[str, ...]:
    here = os.path.dirname(os.path.abspath(__file__))
    found = sorted(f[6:-3] for f in os.listdir(here) if f.startswith("bench_") and f.endswith(".py"))
    return tuple(n for n in ORDER if n in found) + tuple(n for n in found if n not in ORDER)


BENCHES = discover()
TIMEOUT = 3600
TIMEOUT_QUICK = 300


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", default=None, help="comma-separated names among: " + ", ".join(BENCHES))
    p.add_argument("--out", default=None, help="also append the JSON lines to this file")
    p.add_argument("--profile", action="store_true", help="cProfile one e2e run (stderr)")
    ns = p.parse_args()
    names = BENCHES if not ns.only else tuple(n.strip() for n in ns.only.split(",") if n.strip())
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(unknown)}")
    lines = []
    t_all = time.perf_counter()
    for name in names:
        cmd = [sys.executable, "-m", f"tests.bench.bench_{name}"]
        if ns.quick:
            cmd.append("--quick")
        if ns.profile and name == "e2e":
            cmd.append("--profile")
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True, check=False,
                                  timeout=TIMEOUT_QUICK if ns.quick else TIMEOUT)  # fmt: skip
            line = last_json(proc.stdout) if proc.returncode == 0 else None
            if line is None:
                line = {"bench": name, "error": f"exit status {proc.returncode}", "ok": False}
        except subprocess.TimeoutExpired:
            line = {"bench": name, "error": "timed out", "ok": False}
        except Exception as e:  # a benchmark that printed no JSON line
            line = {"bench": name, "error": f"{type(e).__name__}: {e}", "ok": False}
        line.setdefault("machine", machine())
        line["wall_s"] = round(time.perf_counter() - t0, 1)
        print(json.dumps(line, separators=(", ", ": ")), flush=True)
        lines.append(line)
    if ns.out:
        with open(os.path.abspath(ns.out), "a", encoding="utf-8") as f:
            for line in lines:
                f.write(json.dumps(line) + "\n")
    met = sum(1 for line in lines if line.get("ok"))
    print(f"# {met} of {len(lines)} benchmarks met all their targets "
          f"({time.perf_counter() - t_all:.0f} s)", file=sys.stderr)  # fmt: skip
    sys.exit(0)


if __name__ == "__main__":
    main()
