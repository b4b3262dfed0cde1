#!/usr/bin/env bash
# sweep_bench.sh — the whole sweep: Validora against every strict server of
# tests/world/sweep_profiles.json (tests/functional/sweep.sh runs the ones marked "ci"), and
# its table: per profile, the naive run's block, then the first run (a new state dir) and the
# second (the same ledger): blocks, deferrals, anvil refusals, verdicts right, pace and its
# ratio to the profile's fastest polite pace. docs/reputation.md, "Measured", shows it.
#
#   bench/sweep_bench.sh BUILD_DIR [TABLE.jsonl]
#
# Uses the world in $WORLD_DIR when one runs there; otherwise starts one in
# BUILD_DIR/sweep-bench-world (needs root; waits for the machine-wide world lock like any
# world.sh start) and stops it at the end. Takes about ten minutes: the profiles run side by
# side, and the slowest (1 RCPT/s over a 60 s window) sets the pace.
set -euo pipefail
export VALIDORA_CONFIG=""
BUILD=$(cd "${1:?usage: $0 BUILD_DIR [TABLE.jsonl]}" && pwd)
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export VALIDORA=${VALIDORA:-$BUILD/validora} VALIDORA_SOURCE_DIR=$SRC
[ -x "$VALIDORA" ] || { echo "sweep_bench: $VALIDORA not built" >&2; exit 1; }
started=
if [ -n "${WORLD_DIR:-}" ] && bash "$SRC/tests/world/world.sh" status "$WORLD_DIR" >/dev/null 2>&1; then
    :
else
    export WORLD_DIR=$BUILD/sweep-bench-world
    bash "$SRC/tests/world/world.sh" start "$WORLD_DIR"
    started=1
fi
trap '[ -n "$started" ] && bash "$SRC/tests/world/world.sh" stop "$WORLD_DIR" >/dev/null 2>&1' EXIT
table=${2:-$BUILD/sweep-table.jsonl}
: >"$table"
SWEEP_SET=all SWEEP_TABLE=$table bash "$SRC/tests/functional/sweep.sh"
echo "sweep_bench: the table as JSON lines in $table"
