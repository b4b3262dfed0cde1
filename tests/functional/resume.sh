#!/usr/bin/env bash
# resume.sh — crash-safe bulk runs (`validora verify -o FILE --resume`, docs/records.md "Long
# runs"), against the test world:
#  - a 20,000-line run (valid.test, catchall.test, nosuch.test, shuffled; a few lines given
#    twice) killed with SIGKILL at random points (4 kills, at random sizes of FILE), resumed
#    each time and finally completed: every input line has exactly one record (a line given
#    twice: two), each with the status and reason the world must give; a resume of a finished
#    run adds nothing;
#  - a torn last record (FILE cut mid-record by hand) is cut off and that address redone; the
#    zeros a power loss can leave are cut off; real damage and a JSON file are refused, FILE
#    untouched;
#  - deferred records (a warm-up budget of 30) are dropped and redone when the budget allows,
#    the kept records left as they were, no temporary file left behind;
#  - the open policy: an existing non-empty FILE is refused without --resume or --force;
#    usage errors of --resume;
#  - the progress line: --progress onto a file (a line a second, a final line), silence when
#    stderr is not a terminal, a rewritten line on a terminal (script(1)), --no-progress there.
# Env: VALIDORA, WORLD_DIR, VALIDORA_SOURCE_DIR. RESUME_SEED replays a run's shuffle and kills.
set -uo pipefail
: "${VALIDORA:?}" "${WORLD_DIR:?}" "${VALIDORA_SOURCE_DIR:?}"
DNS="127.0.0.1:${VALIDORA_DNS_PORT:-5354}"
# VALIDORA_LONG=0 (the sanitized build): a quarter of the run, the same checks
N_FULL=20000; [ "${VALIDORA_LONG:-1}" = 0 ] && N_FULL=5000
N=${RESUME_ADDRESSES:-$N_FULL}
KILLS=${RESUME_KILLS:-4}
SEED=${RESUME_SEED:-$RANDOM}
RANDOM=$SEED
. "$(dirname "${BASH_SOURCE[0]}")/lib/checks.sh"
checks_tmp
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done # only what this test started
}
echo "     seed $SEED (RESUME_SEED=$SEED replays it)"

# A lab world: no traffic shaping and no warm-up budget, so 20,000 addresses go at the pace
# Postfix answers (the budget case below brings its own budget).
V=("$VALIDORA" verify --allow-private-destinations --dns "$DNS" --no-throttle --no-warmup --smtp-timeout 10
    --mail-from resume@validora.test)

# The list, and what each line must get: "email<TAB>status<TAB>reason".
python3 - "$N" "$SEED" "$tmp/list" "$tmp/expect" <<'PY'
import random, sys
n, seed = int(sys.argv[1]), int(sys.argv[2])
fixed = [("alice@valid.test", "deliverable", "accepted"), ("bob@valid.test", "deliverable", "accepted"),
         ("info@valid.test", "deliverable", "accepted"), ("full@valid.test", "risky", "mailbox_full"),
         ("disabled@valid.test", "undeliverable", "mailbox_disabled"),
         ("x@nullmx.test", "undeliverable", "null_mx")]
dups = 5  # lines given twice: each gets two records
rest = n - len(fixed) - dups
smtp = rest * 3 // 10
lines = list(fixed)
lines += [("nobody%d@valid.test" % i, "undeliverable", "mailbox_not_found") for i in range(smtp // 2)]
lines += [("any%d@catchall.test" % i, "risky", "catch_all") for i in range(smtp - smtp // 2)]
lines += [("x%d@nosuch.test" % i, "undeliverable", "domain_not_found") for i in range(rest - smtp)]
rng = random.Random(seed)
lines += rng.sample(lines, dups)
rng.shuffle(lines)
assert len(lines) == n
with open(sys.argv[3], "w") as f, open(sys.argv[4], "w") as e:
    for a, s, r in lines:
        f.write(a + "\n")
        e.write("%s\t%s\t%s\n" % (a, s, r))
PY

# check_out FILE LIST WHAT: FILE's records are LIST's lines exactly (as many records as a line
# is given), each with its expected status and reason.
check_out() {
    if "$VALIDORA" cat "$1" >"$tmp/check.json" 2>"$tmp/check.err" &&
        python3 - "$tmp/check.json" "$2" "$tmp/expect" <<'PY'; then
import collections, json, sys
want = collections.Counter(l.strip() for l in open(sys.argv[2]) if l.strip())
expect = {}
for l in open(sys.argv[3]):
    a, s, r = l.rstrip("\n").split("\t")
    expect[a] = (s, r)
got = collections.Counter()
wrong = []
for l in open(sys.argv[1]):
    r = json.loads(l)
    got[r["email"]] += 1
    if (r["status"], r["reason"]) != expect.get(r["email"]):
        wrong.append("%s: %s/%s (want %s)" % (r["email"], r["status"], r["reason"], expect.get(r["email"])))
lost = want - got
extra = got - want
if lost or extra or wrong:
    print("lost %d %s; extra %d %s; wrong %d %s" % (sum(lost.values()), list(lost)[:5],
          sum(extra.values()), list(extra)[:5], len(wrong), wrong[:5]), file=sys.stderr)
    sys.exit(1)
PY
        ok "$3"
    else
        bad "$3: $(head -c 600 "$tmp/check.err")"
    fi
}
size() { stat -c %s "$1" 2>/dev/null || echo 0; }

# ---- 20,000 lines, killed with SIGKILL at random points, resumed, completed ----
S="$tmp/state"
OUT="$tmp/out.mp"
EST=$((N * 200)) # about 200 bytes a record
t0=$(date +%s)
landed=0
for k in $(seq 1 "$KILLS"); do
    # the k-th kill at a random size around k/(KILLS+1) of the whole
    pct=$((k * 100 / (KILLS + 1) - 7 + RANDOM % 15))
    target=$((EST * pct / 100))
    resume=(--resume)
    [ "$k" -eq 1 ] && resume=() # the first run is an ordinary one
    "${V[@]}" --state-dir "$S" -i "$tmp/list" -o "$OUT" "${resume[@]}" >/dev/null 2>>"$tmp/kill.err" &
    pid=$!
    pids+=("$pid")
    while kill -0 "$pid" 2>/dev/null && [ "$(size "$OUT")" -lt "$target" ]; do
        sleep 0.02
    done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    [ $? -eq 137 ] && landed=$((landed + 1)) # it was still running: killed, not finished
    if [ "$k" -eq 1 ]; then # the real size of a record, for the later targets
        n=$("$VALIDORA" cat "$OUT" 2>/dev/null | wc -l)
        [ "$n" -gt 100 ] && EST=$(($(size "$OUT") * N / n))
    fi
    "$VALIDORA" cat "$OUT" >/dev/null 2>"$tmp/cat.err"
    if [ ! -s "$tmp/cat.err" ] || grep -q "truncated record at byte" "$tmp/cat.err"; then
        ok "kill $k at ${pct}%: $(size "$OUT") bytes, complete records (a torn last one at most)"
    else
        bad "kill $k: the file is damaged: $(cat "$tmp/cat.err")"
    fi
done
[ "$landed" -ge $((KILLS - 1)) ] && ok "$landed of $KILLS kills landed while verify ran" ||
    bad "only $landed of $KILLS kills landed mid-run (the run is too fast to test)"
timeout 300 "${V[@]}" --state-dir "$S" -i "$tmp/list" -o "$OUT" --resume >/dev/null 2>"$tmp/last.err"
rc=$?
[ $rc -eq 0 ] && ok "the last resume completes: exit 0 ($(($(date +%s) - t0)) s for all runs)" ||
    bad "last resume: exit $rc: $(tail -3 "$tmp/last.err")"
grep -q "^validora verify: resuming $OUT: [0-9]* records kept, 0 deferred to verify again" \
    "$tmp/last.err" && ok "resume says what it kept" || bad "resume message: $(head -3 "$tmp/last.err")"
check_out "$OUT" "$tmp/list" \
    "after $KILLS kills and resumes: every line has exactly one record (twice given: two), each right"
quiet() { grep -hv "resuming\|torn last record\|--no-warmup: no daily budget\|--no-throttle: no traffic shaping\|new to the ledger" "$@"; }
quiet "$tmp/kill.err" "$tmp/last.err" | grep -q . &&
    bad "unexpected messages: $(quiet "$tmp/kill.err" "$tmp/last.err" | head -3)" ||
    ok "the runs said nothing but what resume found and the lab warnings"

# a finished run resumed: nothing verified, nothing written
cp "$OUT" "$tmp/before.mp"
"${V[@]}" --state-dir "$S" -i "$tmp/list" -o "$OUT" --resume >/dev/null 2>"$tmp/again.err"
rc=$?
[ $rc -eq 0 ] && cmp -s "$OUT" "$tmp/before.mp" && ok "resuming a finished run: exit 0, FILE unchanged" ||
    bad "resuming a finished run: exit $rc, $(size "$OUT") vs $(size "$tmp/before.mp") bytes"

# ---- a torn last record: cut off, that address verified again ----
last=$("$VALIDORA" cat "$OUT" | tail -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["email"])')
full=$(size "$OUT")
head -c $((full - 9)) "$tmp/before.mp" >"$OUT"
"${V[@]}" --state-dir "$S" -i "$tmp/list" -o "$OUT" --resume >/dev/null 2>"$tmp/torn.err"
rc=$?
now_last=$("$VALIDORA" cat "$OUT" | tail -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["email"])')
grep -q "a torn last record ([0-9]* bytes at byte [0-9]*) cut off" "$tmp/torn.err" && [ $rc -eq 0 ] &&
    [ "$now_last" = "$last" ] &&
    ok "a record cut mid-way: cut off and $last verified again" ||
    bad "torn record: exit $rc, last $now_last (want $last): $(cat "$tmp/torn.err")"
check_out "$OUT" "$tmp/list" "after the torn record: every line has exactly one record, each right"

# the zeros a power loss may leave past the last synced block
cp "$OUT" "$tmp/good.mp"
head -c 4096 /dev/zero >>"$OUT"
"${V[@]}" --state-dir "$S" -i "$tmp/list" -o "$OUT" --resume >/dev/null 2>"$tmp/zero.err"
rc=$?
[ $rc -eq 0 ] && cmp -s "$OUT" "$tmp/good.mp" && grep -q "; 4096 zero bytes at byte $(size "$tmp/good.mp") (a power cut) cut off" "$tmp/zero.err" &&
    ok "zeros after the last record (a power loss): cut off, nothing redone" ||
    bad "zero tail: exit $rc: $(cat "$tmp/zero.err")"

# damage that is not a torn tail: refused, FILE untouched
cp "$tmp/good.mp" "$OUT"
printf '\xc1garbage' >>"$OUT"
cp "$OUT" "$tmp/damaged.mp"
"${V[@]}" --state-dir "$S" -i "$tmp/list" -o "$OUT" --resume >/dev/null 2>"$tmp/dmg.err"
rc=$?
[ $rc -eq 1 ] && cmp -s "$OUT" "$tmp/damaged.mp" &&
    grep -q "damaged, not just a torn last record: invalid msgpack at byte $(size "$tmp/good.mp")" "$tmp/dmg.err" &&
    ok "real damage: refused with where it is, FILE untouched" || bad "damage: exit $rc: $(cat "$tmp/dmg.err")"

# ---- the open policy and usage errors ----
small="$tmp/small.mp"
"${V[@]}" --state-dir "$S" -o "$small" x1@nosuch.test 2>/dev/null
cp "$small" "$tmp/small.orig"
"${V[@]}" --state-dir "$S" -o "$small" x2@nosuch.test 2>"$tmp/exists.err"
rc=$?
[ $rc -eq 1 ] && cmp -s "$small" "$tmp/small.orig" &&
    grep -q "exists and holds [0-9]* bytes: --resume carries on the run that wrote it, --force overwrites it" "$tmp/exists.err" &&
    ok "an existing non-empty FILE is refused without --resume or --force" ||
    bad "existing FILE: exit $rc: $(cat "$tmp/exists.err")"
"${V[@]}" --state-dir "$S" -o "$small" --force x2@nosuch.test 2>/dev/null
[ "$("$VALIDORA" cat "$small" | grep -c '"email":"x2@nosuch.test"')" = 1 ] &&
    [ "$("$VALIDORA" cat "$small" | wc -l)" = 1 ] && ok "--force overwrites it" || bad "--force did not overwrite"
"${V[@]}" --state-dir "$S" --format json -o "$tmp/j.json" x1@nosuch.test 2>/dev/null
"${V[@]}" --state-dir "$S" -o "$tmp/j.json" --resume x1@nosuch.test 2>"$tmp/j.err"
rc=$?
[ $rc -eq 1 ] && grep -q "not a msgpack record stream" "$tmp/j.err" &&
    ok "--resume on a JSON Lines file: refused, naming the format" || bad "JSON FILE: exit $rc: $(cat "$tmp/j.err")"
usage() { # usage WHAT PATTERN ARGS...: exit 2 with the message
    local what=$1 pat=$2
    shift 2
    "${V[@]}" --state-dir "$S" "$@" x1@nosuch.test >/dev/null 2>"$tmp/u.err"
    local rc=$?
    [ $rc -eq 2 ] && grep -q -- "$pat" "$tmp/u.err" && ok "$what" || bad "$what: exit $rc: $(cat "$tmp/u.err")"
}
usage "--resume without --output: a usage error" "--resume needs --output FILE" --resume
usage "--resume with --format json: a usage error" "needs --format msgpack" --resume -o "$tmp/q" --format json
usage "--resume with --force: a usage error" "not both" --resume --force -o "$tmp/q"

# ---- deferred records (a warm-up budget of 30) redone when the budget allows ----
left=$((86400 - $(date -u +%s) % 86400))
[ "$left" -lt 60 ] && sleep $((left + 2)) # both runs within one UTC day
budget_rules() { # budget_rules DIR N: a warm-up curve of N a day
    mkdir -p "$1/validora"
    printf 'return { budget = function() return %s end }\n' "$2" >"$1/validora/warmup.lua"
}
budget_rules "$tmp/r30" 30
budget_rules "$tmp/r100" 100
{
    echo alice@valid.test
    echo bob@valid.test
    echo info@valid.test
    for i in $(seq 1 47); do echo "nobody$i@valid.test"; done
} >"$tmp/list50"
B=("$VALIDORA" verify --allow-private-destinations --dns "$DNS" --smtp-timeout 10 --mail-from resume@validora.test
    --state-dir "$tmp/bstate" --rules "$VALIDORA_SOURCE_DIR/rules" -i "$tmp/list50" -o "$tmp/b.mp")
"${B[@]}" --rules "$tmp/r30" 2>"$tmp/b1.err"
rc=$?
"$VALIDORA" cat "$tmp/b.mp" >"$tmp/b1.json"
nd=$(grep -c '"reason":"deferred"' "$tmp/b1.json")
[ $rc -eq 0 ] && [ "$nd" = 20 ] && [ "$(wc -l <"$tmp/b1.json")" = 50 ] &&
    ok "a budget of 30: 30 verdicts and 20 deferred records" || bad "budget run: exit $rc, $nd deferred: $(tail -3 "$tmp/b1.err")"
"${B[@]}" --rules "$tmp/r100" --resume 2>"$tmp/b2.err"
rc=$?
"$VALIDORA" cat "$tmp/b.mp" >"$tmp/b2.json"
[ $rc -eq 0 ] && grep -q "resuming $tmp/b.mp: 30 records kept, 20 deferred to verify again" "$tmp/b2.err" &&
    ok "resume with budget left: 30 kept, 20 deferred verified again" || bad "deferred resume: exit $rc: $(cat "$tmp/b2.err")"
check_out "$tmp/b.mp" "$tmp/list50" "after the deferred redo: every address exactly once, none deferred, each right"
grep -v '"reason":"deferred"' "$tmp/b1.json" >"$tmp/b1.kept"
head -30 "$tmp/b2.json" | cmp -s - "$tmp/b1.kept" &&
    ok "the 30 kept records are the same bytes, in the same order, first" || bad "kept records changed"
ls "$tmp" | grep -q "resume-tmp" && bad "a temporary file was left: $(ls "$tmp")" || ok "no temporary file left"
# the rewrite is durable and atomic: the new file synced, renamed over FILE, the directory synced
"${B[@]}" --rules "$tmp/r30" --force 2>/dev/null # all deferred this time: 50 of 30 are used
echo "a rewrite a crash cut short" >"$tmp/b.mp.resume-tmp"
strace -f -y -e trace=fdatasync,fsync,rename,renameat,renameat2 -o "$tmp/b3.trace" "${B[@]}" --rules "$tmp/r100" \
    --resume 2>/dev/null
python3 - "$tmp/b3.trace" "$tmp/b.mp" <<'PY' && ok "the rewrite: the new file fdatasync'd, renamed over FILE, the directory fsync'd, in that order" ||
import os, re, sys
out = sys.argv[2]
steps = []
for l in open(sys.argv[1]):
    if re.search(r"fdatasync\(\d+<%s\.resume-tmp>\)\s*= 0" % re.escape(out), l): steps.append("sync-tmp")
    elif re.search(r'rename(at2?)?\(.*"%s\.resume-tmp", .*"%s"(, 0)?\)\s*= 0' % (re.escape(out), re.escape(out)), l):
        steps.append("rename")
    elif re.search(r"fsync\(\d+<%s>\)\s*= 0" % re.escape(os.path.dirname(out)), l): steps.append("sync-dir")
want = ["sync-tmp", "rename", "sync-dir"]
sys.exit(0 if [s for s in steps if s in want][:3] == want else "steps: %s" % steps)
PY
    bad "the rewrite's syncs: $(grep -E 'resume-tmp|rename' "$tmp/b3.trace" | head -5)"
check_out "$tmp/b.mp" "$tmp/list50" "all 50 deferred, then redone past a stale temporary file: each exactly once, right"
[ ! -e "$tmp/b.mp.resume-tmp" ] && ok "the stale temporary file is gone" || bad "the stale temporary file is still there"

# ---- durability: fdatasync every --sync seconds (default 1), or after every record ----
seq 1 200 | sed 's/^/x/; s/$/@nosuch.test/' >"$tmp/l200"
syncs() { # syncs FILE TRACE: fdatasync calls on FILE
    grep -cE "fdatasync\([0-9]+<$1>\) += 0" "$2"
}
D=("$VALIDORA" verify --allow-private-destinations --dns "$DNS" --state-dir "$tmp/dstate" --no-smtp -i "$tmp/l200")
strace -f -y -e trace=fdatasync -o "$tmp/d0.trace" "${D[@]}" -o "$tmp/d0.mp" --sync 0 2>/dev/null
strace -f -y -e trace=fdatasync -o "$tmp/d1.trace" "${D[@]}" -o "$tmp/d1.mp" 2>/dev/null
n0=$(syncs "$tmp/d0.mp" "$tmp/d0.trace")
n1=$(syncs "$tmp/d1.mp" "$tmp/d1.trace")
[ "$n0" -ge 200 ] && ok "--sync 0: a fdatasync per record ($n0 for 200)" || bad "--sync 0: $n0 fdatasyncs for 200 records"
[ "$n1" -ge 1 ] && [ "$n1" -le 3 ] && ok "--sync 1 (the default): $n1 fdatasync for a run under a second, one at the end" ||
    bad "the default --sync: $n1 fdatasyncs"

# ---- one run per FILE: a second one on the same FILE is refused while the first holds it ----
printf 'x@tarpit.test\n' >"$tmp/tarpit"
"$VALIDORA" verify --allow-private-destinations --dns "$DNS" --state-dir "$tmp/lstate1" --no-warmup --smtp-timeout 3 \
    -i "$tmp/tarpit" -o "$tmp/l.mp" 2>/dev/null &
lpid=$!
pids+=("$lpid")
sleep 1
"$VALIDORA" verify --allow-private-destinations --dns "$DNS" --state-dir "$tmp/lstate2" --no-warmup -i "$tmp/tarpit" -o "$tmp/l.mp" \
    --resume 2>"$tmp/l.err"
rc=$?
[ $rc -eq 1 ] && grep -q "l.mp: in use by another validora verify" "$tmp/l.err" &&
    ok "a second run on a FILE in use is refused" || bad "second run on a FILE in use: exit $rc: $(cat "$tmp/l.err")"
wait "$lpid"

# ---- progress ----
"$VALIDORA" ledger set-age any 30 --state-dir "$tmp/pstate" >/dev/null # no new-IP warning
P=("$VALIDORA" verify --allow-private-destinations --dns "$DNS" --state-dir "$tmp/pstate" --smtp-timeout 5
    --mail-from resume@validora.test -j 2)
printf 'x@tarpit.test\nalice@valid.test\nx1@nosuch.test\nx2@nosuch.test\n' >"$tmp/plist"
"${P[@]}" --progress -i "$tmp/plist" -o "$tmp/p.mp" 2>"$tmp/p.err"
LINE='^validora verify: [0-9]+/4 \([0-9.]+%\), [0-9]+/s(, ETA [0-9:?]+)?; [0-9]+ deliverable, [0-9]+ undeliverable, [0-9]+ risky, [0-9]+ unknown \([0-9]+ deferred\); [0-9]+ in flight, [0-9]+ throttled, [0-9]+ waiting for budget, [0-9]+ breakers open, budget [0-9]+ left$'
grep -qE "$LINE" "$tmp/p.err" && grep -qE '^validora verify: 3/4 \(75.0%\), .*ETA .*; 1 in flight' "$tmp/p.err" &&
    tail -1 "$tmp/p.err" | grep -qE '^validora verify: 4/4 \(100.0%\), [0-9]+/s; 1 deliverable, 2 undeliverable, 0 risky, 1 unknown \(0 deferred\); 0 in flight' &&
    ok "--progress onto a file: lines with done/total, rate, ETA, statuses, engine state; a final line" ||
    bad "--progress: $(cat "$tmp/p.err")"
grep -qvE "$LINE" "$tmp/p.err" && bad "--progress: other lines: $(grep -vE "$LINE" "$tmp/p.err")" || true
"${P[@]}" -i "$tmp/plist" -o "$tmp/p2.mp" 2>"$tmp/p2.err"
[ ! -s "$tmp/p2.err" ] && ok "stderr not a terminal: no progress" || bad "not a terminal: $(cat "$tmp/p2.err")"
printf 'x1@nosuch.test\nx2@nosuch.test\n' | "${P[@]}" --progress -i - --format json 2>"$tmp/p3.err" >/dev/null
grep -qE '^validora verify: 2, [0-9]+/s; 0 deliverable, 2 undeliverable' "$tmp/p3.err" &&
    ok "from stdin: done only, no total" || bad "stdin progress: $(cat "$tmp/p3.err")"
script -qec "$(printf '%q ' "${P[@]}" -i "$tmp/plist" -o "$tmp/p4.mp")" /dev/null >"$tmp/tty.out" 2>&1
grep -q $'\rvalidora verify: 4/4 (100.0%)' "$tmp/tty.out" && grep -q $'\033\[K' "$tmp/tty.out" &&
    ok "on a terminal: by default, one line rewritten with \\r" || bad "terminal: $(cat -A "$tmp/tty.out" | head -5)"
script -qec "$(printf '%q ' "${P[@]}" --no-progress -i "$tmp/plist" -o "$tmp/p5.mp")" /dev/null >"$tmp/tty2.out" 2>&1
! grep -q "validora verify: [0-9]" "$tmp/tty2.out" && ok "--no-progress on a terminal: silent" ||
    bad "--no-progress: $(cat -A "$tmp/tty2.out" | head -3)"
script -qec "$(printf '%q ' "${P[@]}" --format json x1@nosuch.test)" /dev/null >"$tmp/tty3.out" 2>&1
grep -q '"email":"x1@nosuch.test"' "$tmp/tty3.out" && ! grep -q "validora verify: [0-9]" "$tmp/tty3.out" &&
    ok "records onto the terminal: no progress line among them" || bad "records on a terminal: $(cat -A "$tmp/tty3.out" | head -3)"

checks_done resume
