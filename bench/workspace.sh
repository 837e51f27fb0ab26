#!/usr/bin/env bash
# Benchmark: the git workspace overhead of `runbook run` per step (a worktree per step,
# a commit with trailers, a three-way merge into the run branch) against the same work
# done with the git CLI (`git worktree add` + `git add -A` + `git commit`, and
# optionally `git merge` into a run branch).
#
# Usage: bench/workspace.sh [BIN]
#   BIN     runbook binary (default: target/release/runbook, built with
#           `cargo build --release` if missing)
#   SIZES   env var, step counts to run (default "20 100")
#   FILES   env var, files in the test repository (default 1000, over 20 directories);
#           must be at least the largest size
#   BENCH_DIR  env var, where the test repository goes (default /dev/shm if it is a
#           tmpfs, else ${TMPDIR:-/tmp}; see bench/README.md for why tmpfs)
#
# Every workload runs in one test repository (a temp dir outside any git repo, FILES
# small text files, one commit). Step i appends to one file of its own; all steps are
# independent. runbook runs `run --no-input --jobs 1 FILE` with and without --in-place;
# the difference per step is the workspace overhead. Before every timed run an untimed
# prepare step puts the repository back: it removes .runbook/ and the git CLI's
# worktrees, prunes worktrees, deletes the runbook/* and bench/* branches and resets the
# working tree.
# Output: a markdown report on stdout (also saved to bench/out/workspace/report.md); raw
# hyperfine JSON and tool output under bench/out/workspace/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT="$ROOT/bench/out/workspace"
SIZES=${SIZES:-"20 100"}
FILES=${FILES:-1000}
DIRS=20

die() { echo "workspace.sh: $*" >&2; exit 1; }
log() { echo "workspace.sh: $*" >&2; }

for t in python3 hyperfine git; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found (run bench/install-peers.sh; git from your package manager)"
done
case $FILES in '' | *[!0-9]*) die "FILES must be a number, got '$FILES'" ;; esac
for n in $SIZES; do
    case $n in '' | *[!0-9]*) die "SIZES must be numbers, got '$n'" ;; esac
    if [ "$n" -lt 1 ] || [ "$n" -gt "$FILES" ]; then die "size $n: need 1 ≤ N ≤ FILES ($FILES)"; fi
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

# --- the work dir: on tmpfs (/dev/shm) unless BENCH_DIR says otherwise, and outside any
# git repository (the test repo must not be nested). On ext4, creating files shortly
# after thousands were deleted (by the prepare step, or by runbook removing its step
# worktrees at the end of the previous run) goes down the allocator's slow path for
# recently freed inodes (recently_deleted/find_inode_bit): profiled at about 0.8 s of
# system time per 1,000-file worktree, for runbook and git alike, which buries what is
# measured. tmpfs has no such path.
if [ -z "${BENCH_DIR:-}" ]; then
    if [ -d /dev/shm ] && [ -w /dev/shm ] && [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ]; then
        BENCH_DIR=/dev/shm
    else
        BENCH_DIR=${TMPDIR:-/tmp}
    fi
fi
WORK=$(mktemp -d "$BENCH_DIR/runbook-bench-ws.XXXXXX")
FSTYPE=$(stat -f -c %T "$WORK" 2>/dev/null || echo "?")
if [ "$FSTYPE" != tmpfs ]; then
    log "WARNING: $WORK is on $FSTYPE, not tmpfs: file creation after the prepare's deletions may dominate (see bench/README.md)"
fi
trap 'rm -rf "$WORK"' EXIT
if git -C "$WORK" rev-parse --git-dir >/dev/null 2>&1; then
    die "$WORK is inside a git repository; set BENCH_DIR to a directory outside any repo"
fi
REPO="$WORK/repo"
GITWT="$WORK/gitcli" # the git CLI baseline's worktrees

# file_of I: the file step I edits (relative to the repository root)
file_of() { printf 'd%02d/f%04d.txt' $(($1 % DIRS)) "$1"; }

# --- the test repository: FILES small text files over DIRS directories, one commit, packed.
# Local config only: an identity for the commits, and no auto gc (git commit would
# otherwise start `git gc --auto` once loose objects pile up over the timed runs;
# libgit2 never does).
log "creating the test repository: $FILES files in $DIRS directories"
git init -q -b main "$REPO"
(
    cd "$REPO"
    git config user.name "runbook bench"
    git config user.email "bench@runbook.invalid"
    git config gc.auto 0
    git config maintenance.auto false
    git config commit.gpgsign false
    for ((d = 0; d < DIRS; d++)); do mkdir -p "$(printf 'd%02d' "$d")"; done
    for ((i = 1; i <= FILES; i++)); do
        f=$(file_of "$i")
        printf 'file %d\nsome text on line two\nand a third line\n' "$i" >"$f"
    done
    git add -A
    git commit -q -m "test repository: $FILES files"
    # packed, as in a clone: the base's objects are read from a pack, not 1,000+ loose files
    git repack -adq
)
BASE=$(git -C "$REPO" rev-parse HEAD)

# --- prepare (untimed, before the probe and before every hyperfine run): back to one
# commit on main, no worktrees, no run records, no extra branches, a clean working tree.
PREPARE="$WORK/prepare.sh"
cat >"$PREPARE" <<EOF
#!/usr/bin/env bash
set -euo pipefail
cd $(printf %q "$REPO")
rm -rf .runbook $(printf %q "$GITWT")
git worktree prune
git for-each-ref --format='delete %(refname)' refs/heads/runbook/ refs/heads/bench/ |
    git update-ref --stdin
git reset -q --hard $BASE
EOF

# --- the git CLI baseline: gitcli.sh N commit|merge
#   commit: per step, worktree add (detached at the base) + edit + add -A + commit
#   merge:  the same, plus a branch worktree created once (the run worktree) and, per
#           step, `git merge` of the step's commit into it
GITCLI="$WORK/gitcli.sh"
cat >"$GITCLI" <<EOF
#!/usr/bin/env bash
set -euo pipefail
n=\$1 mode=\$2
repo=$(printf %q "$REPO") wt=$(printf %q "$GITWT") base=$BASE
cd "\$repo"
if [ "\$mode" = merge ]; then
    git worktree add -q -b bench/run "\$wt/run" "\$base"
fi
for ((i = 1; i <= n; i++)); do
    s=\$wt/s\$i
    git worktree add -q --detach "\$s" "\$base"
    echo "\$i" >>"\$s/\$(printf 'd%02d/f%04d.txt' \$((i % $DIRS)) "\$i")"
    git -C "\$s" add -A
    git -C "\$s" commit -q -m "step s\$i"
    if [ "\$mode" = merge ]; then
        # worktrees/<id>/HEAD: the step worktree's HEAD, without a rev-parse process
        git -C "\$wt/run" merge --no-edit -q "worktrees/s\$i/HEAD"
    fi
done
EOF

# count_lines FILE REGEX
count_lines() { grep -cE "$2" "$1" || true; }

# probe_check KEY N: after a probe run, check it did the work. Prints a note.
probe_check() {
    local key=$1 n=$2 got want=$2 what
    case $key in
    runbook)
        local branch
        branch=$(git -C "$REPO" for-each-ref --format='%(refname:short)' refs/heads/runbook/ | head -n1)
        if [ -n "$branch" ]; then
            got=$(git -C "$REPO" log --no-merges --format='%(trailers:key=Runbook-Step,valueonly)' \
                "$branch" "^$BASE" | grep -c . || true)
        else
            got=0
        fi
        what="step commits with a Runbook-Step trailer on ${branch:-no run branch}"
        local dirty
        dirty=$(git -C "$REPO" status --porcelain --untracked-files=no | wc -l)
        [ "$dirty" -eq 0 ] || what="$what; WARNING: $dirty files changed in the main working tree"
        ;;
    runbook-inplace)
        got=$(git -C "$REPO" diff --name-only | wc -l)
        what="files changed in the working tree"
        ;;
    gitcli)
        # step worktrees whose HEAD moved off the base (a commit was made there)
        got=$(git -C "$REPO" worktree list --porcelain | grep '^HEAD ' | grep -vc " $BASE\$" || true)
        what="step worktrees with a commit"
        ;;
    gitcli-merge)
        got=$(git -C "$REPO" rev-list --count --no-merges bench/run "^$BASE" 2>/dev/null || echo 0)
        what="step commits on bench/run"
        ;;
    esac
    echo "$got/$want $what"
    [ "$got" -eq "$want" ] || log "WARNING: $key N=$n: $got/$want $what"
}

# measure KEY N CMD...: prepare + probe once (exit status, output kept, work checked),
# then time with hyperfine (prepare before every run, untimed) if the probe succeeded.
# Appends "N KEY rc json note" to RESULTS.
measure() {
    local key=$1 n=$2
    shift 2
    # from 100 steps on, the probe run doubles as the warm-up
    local base="$OUT/$n/$key" rc=0 json="" note="" warmup=1 minruns=5
    if [ "$n" -ge 100 ]; then warmup=0 minruns=3; fi
    mkdir -p "$OUT/$n"
    log "N=$n $key: $*"
    bash "$PREPARE" >"$base.prepare.log" 2>&1 || die "prepare failed, see $base.prepare.log"
    (cd "$REPO" && "$@" >"$base.stdout" 2>"$base.stderr") || rc=$?
    if [ "$rc" -eq 0 ]; then
        note=$(probe_check "$key" "$n")
        local cmd prep
        cmd=$(printf '%q ' "$@")
        prep=$(printf '%q ' bash "$PREPARE")
        if (cd "$REPO" && hyperfine -N --style basic --warmup "$warmup" --min-runs "$minruns" \
            --prepare "$prep" --export-json "$base.json" "$cmd") >"$base.hyperfine.log" 2>&1; then
            json="$base.json"
        else
            rc=$?
            log "N=$n $key: hyperfine failed (see $base.hyperfine.log)"
        fi
    else
        log "N=$n $key: failed (exit $rc), stderr tail: $(tail -c 200 "$base.stderr" | tr '\n' ' ')"
    fi
    printf '%s\t%s\t%s\t%s\t%s\n' "$n" "$key" "$rc" "$json" "$note" >>"$RESULTS"
}

for n in $SIZES; do
    mkdir -p "$OUT/$n"
    rb="$OUT/$n/ws.runbook"
    {
        echo "runbook bench_ws_$n {"
        echo "  phase edit {"
        for ((i = 1; i <= n; i++)); do
            echo "    step s$i { sh \"echo $i >> $(file_of "$i")\" }"
        done
        echo "  }"
        echo "}"
    } >"$rb"
    # the runbook file lives outside the test repository, like the git CLI script
    cp "$rb" "$WORK/ws-$n.runbook"
    if [ -n "$BIN" ]; then
        measure runbook "$n" "$BIN" run --no-input --jobs 1 "$WORK/ws-$n.runbook"
        measure runbook-inplace "$n" "$BIN" run --no-input --jobs 1 --in-place "$WORK/ws-$n.runbook"
    else
        for key in runbook runbook-inplace; do
            printf '%s\t%s\t%s\t\t\n' "$n" "$key" nobin >>"$RESULTS"
        done
    fi
    measure gitcli "$n" bash "$GITCLI" "$n" commit
    measure gitcli-merge "$n" bash "$GITCLI" "$n" merge
done
bash "$PREPARE" >/dev/null 2>&1 || true
cp "$PREPARE" "$GITCLI" "$OUT/"

{
    echo "# runbook workspace benchmark"
    echo
    echo "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs; $(git --version), $(hyperfine --version);" \
        "test repository: $FILES files in $DIRS directories, one commit, in $BENCH_DIR ($FSTYPE)"
    echo "runbook: ${BIN:-none}"
    echo "load average (1/5/15 min) at start: $LOAD_START, at end: $(cut -d" " -f1-3 /proc/loadavg 2>/dev/null || echo "?") (figures are wall-clock: other load on the machine inflates them)"
    echo
} >"$OUT/report.md"

python3 - "$RESULTS" >>"$OUT/report.md" <<'PY'
import json, sys

rows, notes = {}, []
for line in open(sys.argv[1]):
    n, key, rc, js, note = line.rstrip("\n").split("\t")
    r = {"rc": rc, "total": None, "ms": None}
    if rc == "0" and js:
        r["total"] = json.load(open(js))["results"][0]["median"] * 1000
        r["ms"] = r["total"] / int(n)
    rows.setdefault(int(n), {})[key] = r
    if note:
        notes.append(f"{key} N={n}: {note}")
sizes = sorted(rows)
KEYS = ("runbook", "runbook-inplace", "gitcli", "gitcli-merge")

def val(r):
    return None if r is None else r["ms"]

def cell(r):
    if r is None: return "n/a"
    if r["rc"] == "nobin": return "no binary"
    if r["ms"] is None: return f"failed (exit {r['rc']})"
    return f"{r['ms']:.2f}"

def num(x): return "n/a" if x is None else f"{x:.2f}"
def ratio(a, b): return "n/a" if a is None or b is None or b <= 0 else f"{a / b:.2f}x"

def overhead(rb, ip):
    a, b = val(rb), val(ip)
    return None if a is None or b is None else a - b

print("## Per step: median wall time / N (ms)\n")
print("overhead = runbook − runbook --in-place; git CLI = `git worktree add --detach` + "
      "edit + `git add -A` + `git commit`; incl. merge = the same + `git merge` into a "
      "run-branch worktree\n")
print("| N | runbook | runbook --in-place | workspace overhead | git CLI | git CLI incl. merge "
      "| overhead / git CLI | overhead / git CLI incl. merge |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|")
for n in sizes:
    rb, ip, gc, gm = (rows[n].get(k) for k in KEYS)
    ov = overhead(rb, ip)
    print(f"| {n} | {cell(rb)} | {cell(ip)} | {num(ov)} | {cell(gc)} | {cell(gm)} | "
          f"{ratio(ov, val(gc))} | {ratio(ov, val(gm))} |")

# marginal: extra time / extra steps between consecutive sizes; fixed costs per run
# (process start, the run branch and its worktree, removing worktrees) cancel out
if len(sizes) >= 2:
    print("\n## Marginal cost per step (ms): extra time / extra steps since the previous N\n")
    print("Fixed costs of a run (start-up, the run branch and its worktree) cancel out.\n")
    print("| N | runbook | runbook --in-place | workspace overhead | git CLI | git CLI incl. merge "
          "| overhead / git CLI | overhead / git CLI incl. merge |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for a, b in zip(sizes, sizes[1:]):
        m = {}
        for k in KEYS:
            ra, rb_ = rows[a].get(k), rows[b].get(k)
            ok = ra and rb_ and ra["total"] is not None and rb_["total"] is not None
            m[k] = (rb_["total"] - ra["total"]) / (b - a) if ok else None
        ov = None if m["runbook"] is None or m["runbook-inplace"] is None \
            else m["runbook"] - m["runbook-inplace"]
        print(f"| {a}→{b} | {num(m['runbook'])} | {num(m['runbook-inplace'])} | {num(ov)} | "
              f"{num(m['gitcli'])} | {num(m['gitcli-merge'])} | {ratio(ov, m['gitcli'])} | "
              f"{ratio(ov, m['gitcli-merge'])} |")

if notes:
    print("\nProbe checks (the untimed probe run before timing):\n")
    for x in notes:
        print(f"- {x}")
PY

cat "$OUT/report.md"
