#!/usr/bin/env bash
# Installs the peer tools the benchmarks compare runbook against:
#   ninja, make, hyperfine, GNU time (/usr/bin/time) from apt, and just from crates.io.
# Idempotent: anything already present is skipped. Needs root (or sudo) for apt-get.
set -euo pipefail

apt_pkgs=()
command -v ninja >/dev/null 2>&1 || apt_pkgs+=(ninja-build)
command -v make >/dev/null 2>&1 || apt_pkgs+=(make)
command -v hyperfine >/dev/null 2>&1 || apt_pkgs+=(hyperfine)
[ -x /usr/bin/time ] || apt_pkgs+=(time)

if [ "${#apt_pkgs[@]}" -gt 0 ]; then
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
    echo "install-peers: apt-get install ${apt_pkgs[*]}" >&2
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y "${apt_pkgs[@]}"
else
    echo "install-peers: ninja, make, hyperfine, /usr/bin/time already present" >&2
fi

if command -v just >/dev/null 2>&1 || [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/just" ]; then
    echo "install-peers: just already present" >&2
else
    echo "install-peers: cargo install just --locked (a few minutes)" >&2
    cargo install just --locked
fi

# Report what the benchmarks will use.
PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
for t in ninja make hyperfine just; do
    printf '%-10s %s\n' "$t" "$("$t" --version 2>&1 | head -n1)"
done
printf '%-10s %s\n' time "$(/usr/bin/time --version 2>&1 | head -n1)"
