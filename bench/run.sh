#!/usr/bin/env bash
# Benchmark: `runbook run` against `ninja -j2` and `make -j2` executing the same N no-op
# steps (`true`), for N = 1000 10000, on two workloads: N independent steps (indep) and
# the 2-wide dependency DAG (dag).
#
# Usage: bench/run.sh [BIN]
#   BIN     runbook binary (default: target/release/runbook, built with
#           `cargo build --release` if missing)
#   SIZES   env var, step counts to run (default "1000 10000")
#   SETTLE_MAX, SETTLE_US  env vars: wait up to SETTLE_MAX s (default 420) for creating
#           a file to cost at most SETTLE_US µs (default 30) before measuring (see below)
#
# runbook runs `run --no-input --in-place --sandbox off FILE` (ninja and make confine
# nothing; what the OS sandbox costs is bench/sandbox.sh's measure) in a fresh temp dir
# outside any git repo (one per measurement; every timed run adds its own
# .runbook/runs/<id>/ and nothing is deleted until the script exits), once with its
# default job count and once with `--jobs 2`.
# Output: a markdown report on stdout (also saved to bench/out/run/report.md); raw
# hyperfine JSON and tool output under bench/out/run/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT="$ROOT/bench/out/run"
SIZES=${SIZES:-"1000 10000"}
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
unset MAKEFLAGS MFLAGS MAKELEVEL

die() { echo "run.sh: $*" >&2; exit 1; }
log() { echo "run.sh: $*" >&2; }

# --- shared workload generators: ../shared/bench relative to the repo root, else $RUNBOOK_SHARED_BENCH
SHARED="$ROOT/../shared/bench"
if [ ! -f "$SHARED/peer_workloads.py" ]; then
    SHARED=${RUNBOOK_SHARED_BENCH:-}
    [ -n "$SHARED" ] && [ -f "$SHARED/peer_workloads.py" ] ||
        die "workload generators not found in $ROOT/../shared/bench; set RUNBOOK_SHARED_BENCH"
fi
SHARED=$(cd "$SHARED" && pwd)

for t in python3 hyperfine ninja make; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found (run bench/install-peers.sh)"
done

# --- runbook binary; a missing binary only blanks the runbook columns
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
    log "WARNING: runbook binary '$BIN' not found: runbook columns will read 'no binary'"
    BIN=""
fi

rm -rf "$OUT"
mkdir -p "$OUT"
LOAD_START=$(cut -d" " -f1-3 /proc/loadavg 2>/dev/null || echo "?")
RESULTS="$OUT/results.tsv"
: >"$RESULTS"
TMPDIRS=()
cleanup() { for d in "${TMPDIRS[@]+"${TMPDIRS[@]}"}"; do rm -rf "$d"; done; }
trap cleanup EXIT

# fresh_tmp: a new empty directory outside any git repository
fresh_tmp() {
    local d
    d=$(mktemp -d "${TMPDIR:-/tmp}/runbook-bench.XXXXXX")
    TMPDIRS+=("$d")
    if command -v git >/dev/null 2>&1 && git -C "$d" rev-parse --git-dir >/dev/null 2>&1; then
        die "$d is inside a git repository; set TMPDIR to a directory outside any repo"
    fi
    FRESH=$d
}

# --- a quiet disk. ext4 without a journal does not reuse an inode freed in the last
# minute (six while its inode table block is dirty: `recently_deleted`), and walks past
# every such inode on each create. Right after a mass deletion (a test run, the exit of
# an earlier run of this script) each file runbook creates costs several times more, and
# ninja creates none, so the ratio would measure the deletion. Wait, up to SETTLE_MAX
# seconds (default 420), until creating a file costs at most SETTLE_US microseconds
# (default 30; measured here: 8-20 on a quiet disk, 37-90 in the minutes after deleting
# a few hundred thousand files), and report what it cost.
SETTLE_MAX=${SETTLE_MAX:-420}
SETTLE_US=${SETTLE_US:-30}
probe_create() {
    python3 - "$1" <<'PY'
import os, sys, time
d = sys.argv[1]
os.mkdir(d)
n = 300
t = time.perf_counter()
for i in range(n):
    os.close(os.open(os.path.join(d, str(i)), os.O_CREAT | os.O_WRONLY, 0o644))
print("%.0f" % ((time.perf_counter() - t) / n * 1e6))
PY
}
settle() {
    local dir waited=0 us
    fresh_tmp
    dir=$FRESH
    while :; do
        # New files each time: deleting the probe's own would disturb the next probe.
        us=$(probe_create "$dir/$waited")
        if [ "$us" -le "$SETTLE_US" ]; then
            SETTLED="creating a file cost $us µs (after waiting $waited s for the disk to settle)"
            return
        fi
        if [ "$waited" -ge "$SETTLE_MAX" ]; then
            SETTLED="WARNING: creating a file still cost $us µs after $waited s (a quiet disk: ≤ $SETTLE_US µs); runbook's figures are inflated"
            log "$SETTLED"
            return
        fi
        log "creating a file costs $us µs (a quiet disk: ≤ $SETTLE_US): waiting for ext4 to settle ($waited s so far)"
        sleep 30
        waited=$((waited + 30))
    done
}

# count_lines FILE REGEX
count_lines() { grep -cE "$2" "$1" || true; }

# measure KEY N KIND CWD PREPARE CMD...: probe once (exit status, output kept), then time
# with hyperfine (PREPARE before every run) if the probe succeeded.
# Appends "N KIND KEY rc json note" to RESULTS.
measure() {
    local key=$1 n=$2 kind=$3 cwd=$4 prepare=$5
    shift 5
    # at 10,000 steps the probe run doubles as the warm-up
    local base="$OUT/$n/$kind.$key" rc=0 json="" note="" warmup=1 minruns=5
    if [ "$n" -ge 10000 ]; then warmup=0 minruns=3; fi
    log "N=$n $kind $key: (in $cwd) $*"
    (cd "$cwd" && $prepare && "$@" >"$base.stdout" 2>"$base.stderr") || rc=$?
    if [ "$rc" -eq 0 ]; then
        case $key in
        ninja)
            # Check ninja ran every edge, and that it does so again with .ninja_log present
            # (outputs are never created, so every edge stays dirty).
            local first again
            first=$(count_lines "$base.stdout" '^\[[0-9]+/[0-9]+\] ')
            (cd "$cwd" && "$@" >"$base.again.stdout" 2>&1) || true
            again=$(count_lines "$base.again.stdout" '^\[[0-9]+/[0-9]+\] ')
            note="ninja ran $first/$n edges, $again/$n again with .ninja_log kept"
            [ "$first" -eq "$n" ] && [ "$again" -eq "$n" ] || log "WARNING: $note"
            ;;
        make)
            local ran
            ran=$(count_lines "$base.stdout" '^true$')
            note="make ran $ran/$n recipes"
            [ "$ran" -eq "$n" ] || log "WARNING: $note"
            ;;
        esac
        local cmd
        cmd=$(printf '%q ' "$@")
        if (cd "$cwd" && hyperfine -N --style basic --warmup "$warmup" --min-runs "$minruns" \
            --prepare "$prepare" --export-json "$base.json" "$cmd") >"$base.hyperfine.log" 2>&1; then
            json="$base.json"
        else
            rc=$?
            log "N=$n $kind $key: hyperfine failed (see $base.hyperfine.log)"
        fi
    else
        log "N=$n $kind $key: failed (exit $rc), stderr tail: $(tail -c 200 "$base.stderr" | tr '\n' ' ')"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$kind" "$key" "$rc" "$json" "$note" >>"$RESULTS"
}

# shellcheck disable=SC2086
python3 "$SHARED/peer_workloads.py" "$OUT" $SIZES >&2
SETTLED="not probed"
settle
LOAD_START=$(cut -d" " -f1-3 /proc/loadavg 2>/dev/null || echo "?")
for n in $SIZES; do
    for kind in indep dag; do
        python3 "$SHARED/runbook_workloads.py" "$kind" "$n" "$OUT/$n/$kind.runbook"
        if [ "$kind" = dag ]; then peer="$OUT/$n/parse"; else peer="$OUT/$n/indep"; fi
        if [ -n "$BIN" ]; then
            fresh_tmp
            cp "$OUT/$n/$kind.runbook" "$FRESH/bench.runbook"
            # Each run records into its own new .runbook/runs/<id>/; nothing is deleted
            # between iterations, because deleting thousands of record files right before
            # a run sends ext4's inode allocator down its slow path for recently freed
            # inodes (several ms per step), which no user's run pays. The temp dir goes at exit.
            measure runbook "$n" "$kind" "$FRESH" "true" \
                "$BIN" run --no-input --in-place --sandbox off bench.runbook
            fresh_tmp
            cp "$OUT/$n/$kind.runbook" "$FRESH/bench.runbook"
            measure runbook-j2 "$n" "$kind" "$FRESH" "true" \
                "$BIN" run --no-input --in-place --sandbox off --jobs 2 bench.runbook
        else
            for key in runbook runbook-j2; do
                printf '%s\t%s\t%s\t%s\t\t\n' "$n" "$kind" "$key" nobin >>"$RESULTS"
            done
        fi
        measure ninja "$n" "$kind" "$peer" "rm -f .ninja_log .ninja_deps" ninja -j2 -C "$peer"
        measure make "$n" "$kind" "$peer" "true" make -j2 -C "$peer"
    done
done

{
    echo "# runbook run benchmark"
    echo
    echo "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs; ninja $(ninja --version)," \
        "$(make --version | head -n1), $(hyperfine --version)"
    echo "runbook: ${BIN:-none}"
    echo "load average (1/5/15 min) at start: $LOAD_START, at end: $(cut -d" " -f1-3 /proc/loadavg 2>/dev/null || echo "?") (figures are wall-clock: other load on the machine inflates them)"
    echo "disk at start: $SETTLED"
    echo
} >"$OUT/report.md"

python3 - "$RESULTS" >>"$OUT/report.md" <<'PY'
import json, sys

rows, notes = {}, []
for line in open(sys.argv[1]):
    n, kind, key, rc, js, note = line.rstrip("\n").split("\t")
    r = {"rc": rc, "ms": None}
    if rc == "0" and js:
        r["ms"] = json.load(open(js))["results"][0]["median"] * 1000 / int(n)
    rows.setdefault((kind, int(n)), {})[key] = r
    if note:
        notes.append(f"{kind} N={n}: {note}")

def cell(r):
    if r is None: return "n/a"
    if r["rc"] == "nobin": return "no binary"
    if r["ms"] is None: return f"failed (exit {r['rc']})"
    return f"{r['ms']:.3f}"

def ratio(a, b):
    if a is None or b is None or a["ms"] is None or b["ms"] is None: return "n/a"
    return f"{a['ms'] / b['ms']:.2f}x"

print("## Run: median wall time per step (ms)\n")
print("| workload | N | runbook | runbook --jobs 2 | ninja -j2 | make -j2 | runbook/ninja "
      "| runbook/make | runbook -j2/ninja | runbook -j2/make |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
order = sorted(rows, key=lambda k: (k[1], k[0] != "indep"))
for kind, n in order:
    r = rows[(kind, n)]
    rb, rb2, nj, mk = (r.get(k) for k in ("runbook", "runbook-j2", "ninja", "make"))
    print(f"| {kind} | {n} | {cell(rb)} | {cell(rb2)} | {cell(nj)} | {cell(mk)} | {ratio(rb, nj)} | "
          f"{ratio(rb, mk)} | {ratio(rb2, nj)} | {ratio(rb2, mk)} |")

if notes:
    print("\nRe-run checks:\n")
    for x in notes:
        print(f"- {x}")

print("\n## Targets (runbook --jobs 2 vs ninja -j2, per step)\n")
for kind, n in order:
    r = rows[(kind, n)]
    rb2, nj = r.get("runbook-j2"), r.get("ninja")
    if rb2 is None or rb2["rc"] == "nobin":
        print(f"- n/a: {kind} N={n}: no runbook binary")
    elif rb2["ms"] is None:
        print(f"- FAIL: {kind} N={n}: runbook failed (exit {rb2['rc']})")
    elif nj is None or nj["ms"] is None:
        print(f"- n/a: {kind} N={n}: ninja failed")
    else:
        q = rb2["ms"] / nj["ms"]
        state = "PASS" if q <= 1.2 else ("OVER TARGET (under the 1.5x limit)" if q <= 1.5 else "FAIL")
        print(f"- {state}: {kind} N={n}: {q:.2f}x ninja -j2 per step (target ≤ 1.2x, never above 1.5x)")
PY

cat "$OUT/report.md"
