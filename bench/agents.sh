#!/usr/bin/env bash
# Benchmark: what a preset adds over starting the same CLI agent by hand. For each of
# claude, codex and gemini (tests/agents/node_modules/.bin, pinned), against a model
# server on 127.0.0.1 that answers every request with one short text
# (bench/model_server.py), hyperfine times in one session:
#   by-hand   the binary started directly, prompt on stdin, its minimal headless flags;
#   preset    `runbook run` of a one-step runbook whose agent narrows the preset, in
#             place with --sandbox off: the invocation built from the permissions,
#             config files, records, journal, result parsing;
#   full      the same in a git repository with the OS sandbox on (the default): plus
#             the step's worktree and commit, namespaces, Landlock, seccomp, the proxy.
# The differences of the medians are the overheads.
#
# Usage: bench/agents.sh [BIN]   (RUNS from the env, default 10)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT="$ROOT/bench/out/agents"
RUNS=${RUNS:-10}
BIN=$(realpath -m "${1:-$ROOT/target/release/runbook}")
AGENTS="$ROOT/tests/agents/node_modules/.bin"
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release >&2)
[ -x "$AGENTS/claude" ] || (cd "$ROOT/tests/agents" && npm ci --no-audit --no-fund --loglevel=error)
command -v hyperfine >/dev/null || { echo "agents.sh: hyperfine not found (apt-get install hyperfine)" >&2; exit 1; }

rm -rf "$OUT"
mkdir -p "$OUT"
DIR=$(mktemp -d "${TMPDIR:-/tmp}/runbook-agents-bench.XXXXXX")
PORT=$((20000 + RANDOM % 20000))
python3 "$ROOT/bench/model_server.py" "$PORT" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; rm -rf "$DIR"' EXIT
sleep 0.5
URL="http://127.0.0.1:$PORT"
export PATH="$AGENTS:$PATH"
export ANTHROPIC_BASE_URL=$URL ANTHROPIC_API_KEY=bench-key
export OPENAI_BASE_URL=$URL/v1 OPENAI_API_KEY=bench-key
export GOOGLE_GEMINI_BASE_URL=$URL GEMINI_API_KEY=bench-key
export GEMINI_CLI_TRUST_WORKSPACE=true CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1

mkdir -p "$DIR/home/.gemini" "$DIR/codex"
echo '{"security":{"auth":{"selectedType":"gemini-api-key"}},"privacy":{"usageStatisticsEnabled":false}}' \
    >"$DIR/home/.gemini/settings.json"
cat >"$DIR/codex/config.toml" <<TOML
model_provider = "bench"
[features]
plugins = false
[analytics]
enabled = false
[model_providers.bench]
name = "bench"
base_url = "$URL/v1"
wire_api = "responses"
env_key = "OPENAI_API_KEY"
TOML
declare -A BY_HAND=(
    [claude]="claude -p --bare --output-format json"
    [codex]="env CODEX_HOME=$DIR/codex codex exec --json --skip-git-repo-check --ephemeral -"
    [gemini]="env HOME=$DIR/home gemini --output-format json"
)
declare -A VARS=(
    [claude]="ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL"
    [codex]="OPENAI_API_KEY, OPENAI_BASE_URL"
    [gemini]="GEMINI_API_KEY, GOOGLE_GEMINI_BASE_URL"
)
for agent in claude codex gemini; do
    work="$DIR/$agent"
    mkdir -p "$work"
    cat >"$work/bench.runbook" <<RB
runbook agent_bench {
  import "std/agents"
  agent worker uses agents.$agent {
    write   ["src/**"]
    exec    ["git"]
    network off
    env     [${VARS[$agent]}]
  }
  phase p {
    step s by worker { prompt "Say hello." }
  }
}
RB
    (cd "$work" && git init -q -b main . && git -c user.name=b -c user.email=b@e commit -q --allow-empty -m init \
        && git add bench.runbook && git -c user.name=b -c user.email=b@e commit -q -m rb)
    echo "Say hello." >"$DIR/prompt"
    (cd "$work" && hyperfine --warmup 2 --runs "$RUNS" --export-json "$OUT/$agent.json" \
        --prepare 'rm -rf .runbook; git worktree prune; git branch --list "runbook/*" | xargs -r git branch -D -q' \
        -n by-hand "${BY_HAND[$agent]} <$DIR/prompt" \
        -n preset "$BIN run --no-input --in-place --sandbox off bench.runbook" \
        -n full "$BIN run --no-input bench.runbook" >&2)
done
python3 - "$OUT" <<'PY' | tee "$OUT/report.md"
import json, sys, os
out = sys.argv[1]
print("| agent | by hand (median) | preset, --sandbox off --in-place | overhead | preset, worktree + sandbox | overhead |")
print("| --- | --- | --- | --- | --- | --- |")
for agent in ["claude", "codex", "gemini"]:
    data = json.load(open(os.path.join(out, agent + ".json")))
    m = {r["command"]: r["median"] * 1000 for r in data["results"]}
    h, p, f = m["by-hand"], m["preset"], m["full"]
    print(f"| {agent} | {h:.0f} ms | {p:.0f} ms | {p - h:+.0f} ms | {f:.0f} ms | {f - h:+.0f} ms |")
PY
