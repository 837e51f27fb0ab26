#!/usr/bin/env bash
# Benchmark: `runbook check FILE` against `just --summary` and `ninja -n` on the same
# 2-wide dependency DAG of N no-op steps (N = 100 1000 10000 100000).
#
# Usage: bench/check.sh [BIN]
#   BIN     runbook binary (default: target/release/runbook, built with
#           `cargo build --release` if missing)
#   SIZES   env var, step counts to run (default "100 1000 10000 100000")
#
# Output: a markdown report on stdout (also saved to bench/out/check/report.md);
# raw hyperfine JSON, peak-RSS probes and stderr of every tool under bench/out/check/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT="$ROOT/bench/out/check"
SIZES=${SIZES:-"100 1000 10000 100000"}
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
unset MAKEFLAGS MFLAGS MAKELEVEL

die() { echo "check.sh: $*" >&2; exit 1; }
log() { echo "check.sh: $*" >&2; }

# --- shared workload generators: ../shared/bench relative to the repo root, else $RUNBOOK_SHARED_BENCH
SHARED="$ROOT/../shared/bench"
if [ ! -f "$SHARED/peer_workloads.py" ]; then
    SHARED=${RUNBOOK_SHARED_BENCH:-}
    [ -n "$SHARED" ] && [ -f "$SHARED/peer_workloads.py" ] ||
        die "workload generators not found in $ROOT/../shared/bench; set RUNBOOK_SHARED_BENCH"
fi
SHARED=$(cd "$SHARED" && pwd)

for t in python3 hyperfine just ninja; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found (run bench/install-peers.sh)"
done
[ -x /usr/bin/time ] || die "/usr/bin/time not found (run bench/install-peers.sh)"

# --- runbook binary; a missing binary only blanks the runbook column
if [ $# -ge 1 ]; then
    BIN=$1
else
    BIN="$ROOT/target/release/runbook"
    if [ ! -x "$BIN" ]; then
        log "$BIN missing: cargo build --release"
        (cd "$ROOT" && cargo build --release) >&2 || log "cargo build --release failed"
    fi
fi
if [ -x "$BIN" ]; then
    BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
else
    log "WARNING: runbook binary '$BIN' not found: runbook column will read 'no binary'"
    BIN=""
fi

rm -rf "$OUT"
mkdir -p "$OUT"
LOAD_START=$(cut -d" " -f1-3 /proc/loadavg 2>/dev/null || echo "?")
RESULTS="$OUT/results.tsv"
: >"$RESULTS"

# measure KEY N CWD CMD...: probe once under /usr/bin/time (exit status, peak RSS), then
# time with hyperfine if the probe succeeded. Appends "N KEY rc rss_kib json" to RESULTS.
measure() {
    local key=$1 n=$2 cwd=$3
    shift 3
    local base="$OUT/$n/$key" rc=0 rss="" json="" warmup=2 minruns=10
    if [ "$n" -ge 100000 ]; then warmup=1 minruns=3; fi
    log "N=$n $key: $*"
    (cd "$cwd" && /usr/bin/time -f '%M' -o "$base.rss" "$@" >"$base.stdout" 2>"$base.stderr") || rc=$?
    rss=$(tail -n1 "$base.rss" 2>/dev/null | awk '{print $1}') || true
    if [ "$rc" -eq 0 ]; then
        local cmd
        cmd=$(printf '%q ' "$@")
        if (cd "$cwd" && hyperfine -N --style basic --warmup "$warmup" --min-runs "$minruns" \
            --export-json "$base.json" "$cmd") >"$base.hyperfine.log" 2>&1; then
            json="$base.json"
        else
            rc=$?
            log "N=$n $key: hyperfine failed (see $base.hyperfine.log)"
        fi
    else
        log "N=$n $key: failed (exit $rc), stderr tail: $(tail -c 200 "$base.stderr" | tr '\n' ' ')"
    fi
    printf '%s\t%s\t%s\t%s\t%s\n' "$n" "$key" "$rc" "${rss:-}" "$json" >>"$RESULTS"
}

# shellcheck disable=SC2086
python3 "$SHARED/peer_workloads.py" "$OUT" $SIZES >&2
for n in $SIZES; do
    python3 "$SHARED/runbook_workloads.py" dag "$n" "$OUT/$n/dag.runbook"
    if [ -n "$BIN" ]; then
        measure runbook "$n" "$OUT/$n" "$BIN" check "$OUT/$n/dag.runbook"
    else
        printf '%s\t%s\t%s\t%s\t%s\n' "$n" runbook nobin "" "" >>"$RESULTS"
    fi
    measure just "$n" "$OUT/$n/parse" just --justfile justfile --summary
    measure ninja "$n" "$OUT/$n/parse" ninja -n -C "$OUT/$n/parse"
done

{
    echo "# runbook check benchmark"
    echo
    echo "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, stack limit $(ulimit -s) KiB;" \
        "$(just --version), ninja $(ninja --version), $(hyperfine --version)"
    echo "runbook: ${BIN:-none}"
    echo "load average (1/5/15 min) at start: $LOAD_START, at end: $(cut -d" " -f1-3 /proc/loadavg 2>/dev/null || echo "?") (figures are wall-clock: other load on the machine inflates them)"
    echo
} >"$OUT/report.md"

python3 - "$RESULTS" >>"$OUT/report.md" <<'PY'
import json, sys

rows = {}
for line in open(sys.argv[1]):
    n, key, rc, rss, js = line.rstrip("\n").split("\t")
    r = {"rc": rc, "rss": int(rss) / 1024 if rss else None, "ms": None}
    if rc == "0" and js:
        r["ms"] = json.load(open(js))["results"][0]["median"] * 1000
    rows.setdefault(int(n), {})[key] = r
sizes = sorted(rows)

def cell_ms(r):
    if r is None: return "n/a"
    if r["rc"] == "nobin": return "no binary"
    if r["ms"] is None: return f"failed (exit {r['rc']})"
    return f"{r['ms']:.1f}"

def ratio(a, b):
    if a is None or b is None or a["ms"] is None or b["ms"] is None: return "n/a"
    return f"{a['ms'] / b['ms']:.2f}x"

def mib(r):
    if r is None or r["rc"] == "nobin" or r["rss"] is None: return "n/a"
    s = f"{r['rss']:.1f}"
    return s if r["rc"] == "0" else f"{s} (failed)"

print("## Check: median wall time and peak RSS\n")
print("| N | runbook ms | just ms | ninja ms | runbook/just | runbook/ninja "
      "| runbook peak MiB | just peak MiB | ninja peak MiB |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for n in sizes:
    rb, ju, nj = (rows[n].get(k) for k in ("runbook", "just", "ninja"))
    print(f"| {n} | {cell_ms(rb)} | {cell_ms(ju)} | {cell_ms(nj)} | {ratio(rb, ju)} | "
          f"{ratio(rb, nj)} | {mib(rb)} | {mib(ju)} | {mib(nj)} |")

def per_step(key):
    out, prev = {}, None
    for n in sizes:
        r = rows[n].get(key)
        if r is None or r["ms"] is None:
            out[n] = (None, None); prev = None; continue
        us = r["ms"] * 1000 / n
        marg = (r["ms"] - prev[1]) * 1000 / (n - prev[0]) if prev else None
        out[n] = (us, marg)
        prev = (n, r["ms"])
    return out

def us(x): return "n/a" if x is None else f"{x:.2f}"

print("\n## Growth: time per step (µs)\n")
print("per step = median / N; marginal = extra time / extra steps since the previous N "
      "(startup cancels out: flat marginal = linear growth)\n")
g = {k: per_step(k) for k in ("runbook", "just", "ninja")}
print("| N | runbook µs/step | runbook marginal µs/step | just µs/step | just marginal "
      "| ninja µs/step | ninja marginal |")
print("|---:|---:|---:|---:|---:|---:|---:|")
for n in sizes:
    print(f"| {n} | {us(g['runbook'][n][0])} | {us(g['runbook'][n][1])} | {us(g['just'][n][0])} | "
          f"{us(g['just'][n][1])} | {us(g['ninja'][n][0])} | {us(g['ninja'][n][1])} |")

# --- targets (bench/README.md)
def verdict(ok, text): return f"- {'PASS' if ok else 'FAIL'}: {text}"
print("\n## Targets\n")
T = 10000
rb = rows.get(T, {}).get("runbook")
ju = rows.get(T, {}).get("just")
if rb is None or rb["rc"] == "nobin":
    print("- n/a: no runbook binary")
else:
    if rb["ms"] is not None and ju is not None and ju["ms"] is not None:
        q = rb["ms"] / ju["ms"]
        state = "PASS" if q <= 0.5 else ("OVER TARGET (under the 1.0x limit)" if q <= 1.0 else "FAIL")
        print(f"- {state}: check of {T} steps = {q:.2f}x just --summary (target ≤ 0.5x, never above 1.0x)")
    elif rb["ms"] is None:
        print(f"- FAIL: runbook check of {T} steps failed (exit {rb['rc']})")
    else:
        print(f"- n/a: just --summary of {T} steps failed, no ratio")
    if rb["rss"] is not None:
        print(verdict(rb["rc"] == "0" and rb["rss"] < 50, f"peak RSS at {T} steps = {rb['rss']:.1f} MiB (target < 50 MiB)"))
    m0 = g["runbook"].get(10000, (None, None))[1]
    m1 = g["runbook"].get(100000, (None, None))[1]
    if m0 is not None and m1 is not None:
        # ≤ 1.5x counts as linear; so does a marginal cost under 0.1 µs/step (10 ms per
        # 100,000 steps), where the ratio is timing noise
        q = f"{m1 / m0:.2f}x" if m0 > 0 else "n/a"
        print(verdict(m1 <= 1.5 * m0 or m1 < 0.1,
                      f"linear: marginal cost 10000→100000 = {m1:.2f} µs/step, {q} that of "
                      f"1000→10000 = {m0:.2f} µs/step (≤ 1.5x, or < 0.1 µs/step, counts as linear)"))
    big = rows.get(100000, {}).get("runbook")
    if big is not None:
        print(verdict(big["rc"] == "0", f"check of 100000 steps: "
                      f"{'ok' if big['rc'] == '0' else 'exit ' + big['rc']}"))
PY

cat "$OUT/report.md"
