#!/usr/bin/env bash
# Launch the built bundle on a virtual display with a fresh profile and wait for the
# window's ready line in its log ("window ready", desktop/app.py READY_MARK). Exits 0 when
# it appears within the time box with no error logged before it, 1 when the bundle exits,
# logs an error or the time box runs out (output and log tails are printed). Usage: packaging/check_bundle.sh [BUNDLE_DIR] [SECONDS]
set -euo pipefail

BUNDLE=${1:-dist/taskdeck}
LIMIT=${2:-90}
EXE="$BUNDLE/taskdeck"
READY="window ready"

[[ -x "$EXE" ]] || { echo "check_bundle: no executable at $EXE (run make package)" >&2; exit 1; }
command -v xvfb-run >/dev/null || { echo "check_bundle: xvfb-run is missing (make system-deps-test)" >&2; exit 1; }

PROFILE=$(mktemp -d -t taskdeck-bundle-XXXXXX)
export XDG_RUNTIME_DIR="$PROFILE/runtime"
mkdir -m 700 "$XDG_RUNTIME_DIR"
LOG="$PROFILE/logs/taskdeck-window.log"
OUT="$PROFILE/stdout.txt"
PID=""

cleanup() {
    if [[ -n "$PID" ]] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM -- "-$PID" 2>/dev/null || true  # the whole group: xvfb-run, Xvfb, the bundle
        for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$PID" 2>/dev/null || true
    fi
    rm -rf "$PROFILE"
}
trap cleanup EXIT

START=$(date +%s%N)
# its own process group (setsid), so the clean-up ends everything it started and nothing else
setsid xvfb-run -a -s "-screen 0 1280x800x24" "$EXE" --profile "$PROFILE" >"$OUT" 2>&1 &
PID=$!

while true; do
    if [[ -f "$LOG" ]] && grep -q "$READY" "$LOG"; then
        if grep -qE "Traceback|ERROR" "$LOG"; then
            echo "check_bundle: FAILED — ready, but the log has errors" >&2
            break
        fi
        MS=$(( ($(date +%s%N) - START) / 1000000 ))
        echo "check_bundle: OK — \"$READY\" after $((MS / 1000)).$(printf %03d $((MS % 1000))) s ($(du -sh "$BUNDLE" | cut -f1) bundle)"
        grep "$READY" "$LOG" | tail -1
        exit 0
    fi
    if ! kill -0 "$PID" 2>/dev/null; then
        echo "check_bundle: FAILED — the bundle exited before it was ready" >&2
        break
    fi
    if (( $(date +%s%N) - START > LIMIT * 1000000000 )); then
        echo "check_bundle: FAILED — not ready within $LIMIT s" >&2
        break
    fi
    sleep 0.2
done
echo "--- output" >&2; tail -n 30 "$OUT" >&2 || true
echo "--- log" >&2; tail -n 30 "$LOG" >&2 || true
exit 1
