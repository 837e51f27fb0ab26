#!/usr/bin/env bash
# Benchmark: what the OS sandbox adds per step. `runbook run` of N no-op shell steps
# (`true`), in place, with `--sandbox on` and `--sandbox off`, timed by hyperfine in the
# same session; the difference divided by N is the sandbox's cost per step (preparing
# it once per attempt, and entering it in the process: namespaces, Landlock, seccomp).
# `cargo bench --bench sandbox` splits that cost by layer for a single process start.
#
# Usage: bench/sandbox.sh [BIN]   (N from the env var N, default 500; JOBS default 2)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT="$ROOT/bench/out/sandbox"
N=${N:-500}
JOBS=${JOBS:-2}
BIN=${1:-$ROOT/target/release/runbook}
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release >&2)
command -v hyperfine >/dev/null || { echo "sandbox.sh: hyperfine not found (apt-get install hyperfine)" >&2; exit 1; }

rm -rf "$OUT"
mkdir -p "$OUT"
DIR=$(mktemp -d "${TMPDIR:-/tmp}/runbook-sandbox-bench.XXXXXX")
trap 'rm -rf "$DIR"' EXIT
{
    echo "runbook sandbox_bench {"
    echo "  phase all {"
    for i in $(seq 1 "$N"); do echo "    step s$i { sh \"true\" }"; done
    echo "  }"
    echo "}"
} >"$DIR/bench.runbook"
cd "$DIR"
hyperfine --warmup 1 --runs 5 --export-json "$OUT/hyperfine.json" \
    --prepare 'rm -rf .runbook' \
    -n off "$BIN run --no-input --in-place --jobs $JOBS --sandbox off bench.runbook" \
    -n on "$BIN run --no-input --in-place --jobs $JOBS --sandbox on bench.runbook" >&2
python3 - "$OUT/hyperfine.json" "$N" <<'PY' | tee "$OUT/report.md"
import json, sys
data = json.load(open(sys.argv[1]))
n = int(sys.argv[2])
m = {r["command"]: r["median"] for r in data["results"]}
off, on = m["off"], m["on"]
print(f"# sandbox overhead, {n} no-op steps")
print()
print("| sandbox | wall (median) | per step |")
print("|---|---:|---:|")
print(f"| off | {off*1000:.0f} ms | {off/n*1000:.3f} ms |")
print(f"| on | {on*1000:.0f} ms | {on/n*1000:.3f} ms |")
print()
print(f"overhead: {(on-off)/n*1000:.3f} ms per step ({on/off:.2f}x)")
PY
