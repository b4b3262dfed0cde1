#!/bin/sh
# jq.sh — reads Validora's record stream through `validora cat` (msgpack to JSON Lines) with
# jq: prints the number of records by status, then the addresses worth mailing (status
# deliverable), one per line.
#
# Usage: jq.sh RESULTS.mpk      (VALIDORA: the validora to use; default: the one on PATH)
#
# Other one-liners on the same stream:
#   validora cat RESULTS.mpk | jq -r 'select(.status == "unknown" and .reason == "deferred") | .email'
#                                               # what a later run should redo
#   validora cat RESULTS.mpk | jq -s 'group_by(.domain) | map({domain: .[0].domain, n: length})'
#   tail -f RESULTS.mpk | validora cat | jq -c '{email, status, reason}'   # while a run writes
set -eu
[ $# -eq 1 ] || { echo "usage: jq.sh RESULTS.mpk" >&2; exit 2; }
validora=${VALIDORA:-validora}
"$validora" cat "$1" | jq -rs '
  (group_by(.status) | map("\(.[0].status)\t\(length)") | .[]),
  "total\t\(length)",
  (.[] | select(.status == "deliverable") | .address)'
