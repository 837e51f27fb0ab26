#!/bin/sh
# A scripted stand-in for a coding agent, so the demo runs offline with no API key.
#
# Like a real CLI agent it reads its prompt on stdin, edits files and prints a summary
# on stdout (the step's output). It understands three lines of the prompt:
#   DIR: <directory to work in>    FROM: <old name>    TO: <new name>
# and, to show the retry loop, it is careless on purpose: without feedback in the
# prompt it renames in the first file only; once the prompt carries the failing
# check's output ("Feedback:"), it fixes every file the check listed.
set -eu
prompt=$(cat)
field() { printf '%s\n' "$prompt" | sed -n "s/^[[:space:]]*$1:[[:space:]]*//p" | head -n 1; }
dir=$(field DIR)
from=$(field FROM)
to=$(field TO)
if [ -z "$dir" ] || [ -z "$from" ] || [ -z "$to" ]; then
  echo "scripted-agent: the prompt needs DIR:, FROM: and TO: lines" >&2
  exit 2
fi
files=$(grep -rl -- "$from" "$dir" 2>/dev/null | sort || true)
if [ -z "$files" ]; then
  echo "Nothing to rename: no file under $dir mentions $from."
  exit 0
fi
if printf '%s\n' "$prompt" | grep -q '^Feedback:'; then
  todo=$files
  echo "Attempt ${RUNBOOK_ATTEMPT:-?}: the check found leftovers; fixing every file it listed."
else
  todo=$(printf '%s\n' "$files" | head -n 1)
  echo "Attempt ${RUNBOOK_ATTEMPT:-?}: renamed in the first file I found."
fi
for f in $todo; do
  sed -i "s/$from/$to/g" "$f"
  echo "  edited ${f#"$dir"/}"
done
