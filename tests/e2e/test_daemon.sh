#!/bin/bash
# The daemon's life cycle: config checking (exit codes, file:line messages), a bad config
# never touching a running data path, kill -9 and restart adopting the pinned state with
# no connection lost, SIGHUP reload, detach.
set -eu
E2E_ARG_BUILD=${1:-build}
source "$(dirname "$0")/lib.sh"
e2e_init dm
FSAN="$(dirname "$FS")/failsteer-san"
[ -x "$FSAN" ] || FSAN=$FS

# -- failsteer check (under ASan/UBSan), no root state needed
e2e_config
out=$("$FSAN" check -c "$CFG" 2>&1) && rc=0 || rc=$?
e2e_check "check: good file exits 0" eq "$rc" 0
e2e_check "check: prints effective settings with defaults" grep -q "flow_idle_timeout_s = 3600" <<<"$out"
printf '[global]\ninterfaces = x\n[service a]\naddress = 198.18.2.10:8080\nbackends = 198.18.2.10:8080\nfailover_threshold = 2\n' >"$WORK/bad.conf"
out=$("$FSAN" check -c "$WORK/bad.conf" 2>&1) && rc=0 || rc=$?
e2e_check "check: bad threshold exits 2" eq "$rc" 2
e2e_check "check: message names file, line and problem" grep -q "$WORK/bad.conf:6: failover_threshold: '2'" <<<"$out"
out=$("$FSAN" check -c "$WORK/missing.conf" 2>&1) && rc=0 || rc=$?
e2e_check "check: unreadable file exits 2 and says so" eq "$rc:$(grep -c 'cannot read' <<<"$out")" "2:1"
out=$("$FSAN" frobnicate 2>&1) && rc=0 || rc=$?
e2e_check "unknown command exits 2" eq "$rc" 2
out=$("$FSAN" frobnicate -h 2>&1) && rc=0 || rc=$?
e2e_check "unknown command with -h still exits 2" eq "$rc" 2
out=$("$FSAN" run -c "$CFG" -p /sys/fs/bpf/elsewhere 2>&1) && rc=0 || rc=$?
e2e_check "run with -p exits 2: the pin path comes from the config" \
	eq "$rc:$(grep -c 'takes the pin path from the config' <<<"$out")" "2:1"
out=$("$FSAN" detach --json 2>&1) && rc=0 || rc=$?
e2e_check "an option the command does not take exits 2" eq "$rc:$(grep -c 'takes no --json' <<<"$out")" "2:1"
out=$("$FSAN" --version 2>&1) && rc=0 || rc=$?
e2e_check "--version prints the version" eq "$rc:$(grep -c '^failsteer [0-9]' <<<"$out")" "0:1"
out=$("$FSAN" --version extra 2>&1) && rc=0 || rc=$?
e2e_check "--version with an argument exits 2" eq "$rc:$(grep -c 'takes no arguments' <<<"$out")" "2:1"
out=$("$FSAN" status -p "$WORK/nothing-pinned" 2>&1) && rc=0 || rc=$?
e2e_check "status without a daemon exits 1 with a hint" eq "$rc:$(grep -c 'is failsteer running' <<<"$out")" "1:1"

topo_up "$P" off
start_site "$P" primary
start_site "$P" backup
e2e_start_daemon
e2e_check "fresh start creates the pins" test -e "$PIN/flows" -a -e "$PIN/services" -a -e "$PIN/prog_tc_ingress"
# (tc_attach = auto: with tcx in the kernel a link per interface and direction, pinned;
# clsact filters without.)
AUTO=$(auto_kind)
AUTO_LINKS=$([ "$AUTO" = tcx ] && echo 6 || echo 0)
report "tc_attach = auto attaches here as: $AUTO"
e2e_check "fresh start attaches the pinned programs ($AUTO), links pinned too" \
	eq "$(hooked "${P}e0"):$(hooked "${P}e2" egress):$(link_pins)" "$AUTO $(pinned_prog):$AUTO $(pinned_prog egress):$AUTO_LINKS"

# Load with long-lived connections across everything that follows.
load_start "${P}cli" run "$PRI4:$SVC_PORT" 50 14 --long-lived 2 --long-interval-ms 100
sleep 1
# -- a bad config never touches the running data path
out=$(edge timeout 10 "$FS" run -c "$WORK/bad.conf" 2>&1) && rc=0 || rc=$?
e2e_check "run with a bad config exits 2" eq "$rc" 2
e2e_check "... and the running daemon still owns the data path" kill -0 "$E2E_DAEMON_PID"
# A config with an error still leads status to the pinned state (only pin_path counts).
printf '[global]\ninterfaces = x\npin_path = %s\n[service a]\naddress = 198.18.2.10:8080\nbackends = 198.18.2.10:8080\nfailover_threshold = 2\n' "$PIN" >"$WORK/bad-pin.conf"
out=$(edge "$FS" status -c "$WORK/bad-pin.conf" 2>&1) && rc=0 || rc=$?
e2e_check "status -c with a config in error: exit 0, the service shown, the problem warned" \
	eq "$rc:$(grep -c '^service classifier' <<<"$out"):$(grep -c 'warning: .*bad-pin.conf:7: failover_threshold' <<<"$out")" "0:1:1"

# -- move to the backup by hand, then kill -9 the daemon
fsctl failover classifier 1 >/dev/null
sleep 1
flows_before=$(bpftool map dump pinned "$PIN/flows" 2>/dev/null | grep -c '"dir"')
# Learned models are persisted in backend_model (only what changed, each tick).
evidence() {
	bpftool -j map dump pinned "$PIN/backend_model" 2>/dev/null |
		$PY -c 'import json,sys; print(max(e.get("formatted", e)["value"]["evidence_ticks"] for e in json.load(sys.stdin)))'
}
evidence_before=$(evidence)
killed_pid=$E2E_DAEMON_PID
killed_prog=$(pinned_prog)
kill -KILL "$E2E_DAEMON_PID"
wait "$E2E_DAEMON_PID" 2>/dev/null || true
E2E_DAEMON_PID=""
sleep 1.5
e2e_check "daemon gone: new connections still go to the backup" eq "$(site_of "${P}cli" "http://$PRI4:$SVC_PORT/classify")" backup
daemon_json() { fsctl status --json | $PY -c 'import json,sys; d=json.load(sys.stdin)["daemon"]; print(d["state"], d["pid"])'; }
e2e_check "daemon gone: status says it is silent (killed), naming its pid" \
	eq "$(daemon_json):$(fsctl status | grep -c "^daemon pid $killed_pid  SILENT")" "silent $killed_pid:1"
e2e_check "daemon gone: its programs stay attached" eq "$(hooked "${P}e0")" "$AUTO $killed_prog"

e2e_start_daemon
evidence_after=$(evidence) # at once: a model started afresh has only a tick or two
e2e_check "restart adopts the pinned state" grep -q "adopted pinned state" "$DLOG"
e2e_check "restart: status says the new daemon ticks" eq "$(daemon_json)" "ticking $E2E_DAEMON_PID"
e2e_check "restart keeps the active backend (forced backup)" eq "$(active_backend)" 1
e2e_check "restart moves the pinned links ($AUTO) over to its own programs" \
	eq "$(hooked "${P}e0"):$(hooked "${P}e1" egress):$(link_pins):$([ "$(pinned_prog)" != "$killed_prog" ] && echo new)" \
	"$AUTO $(pinned_prog):$AUTO $(pinned_prog egress):$AUTO_LINKS:new"
e2e_check "restart keeps the operator's override" bash -c "$(declare -f edge fsctl); FS=$FS P=$P PIN=$PIN; fsctl status classifier | grep -q FORCED"
flows_after=$(bpftool map dump pinned "$PIN/flows" 2>/dev/null | grep -c '"dir"')
report "flow entries before kill -9: $flows_before, after restart: $flows_after"
e2e_check "restart keeps the flow table" ge "$flows_after" 2
report "model evidence ticks before kill -9: $evidence_before, after restart: $evidence_after"
e2e_check "the models had learned from the traffic" ge "$evidence_before" 10
e2e_check "restart adopts the learned models (evidence kept, not restarted from zero)" \
	ge "$evidence_after" "$evidence_before"

# -- 'failsteer failover' writes the services entry from its own copy, which can miss a
# change of the daemon's (a down mask, a route): after an operator's command the entry is
# the daemon's again. A down mask the daemon never set stands for such a stale copy.
SVC_KEY="c6 12 02 0a 00 00 00 00 00 00 00 00 00 00 00 00 1f 90 04 00" # 198.18.2.10:8080
down_mask() {
	bpftool -j map lookup pinned "$PIN/services" key hex $SVC_KEY 2>/dev/null |
		$PY -c 'import json,sys; d=json.load(sys.stdin); print(d.get("formatted", d)["value"]["down_mask"])'
}
down_mask_is() { [ "$(down_mask)" = "$1" ]; }
stale=$(bpftool -j map lookup pinned "$PIN/services" key hex $SVC_KEY |
	$PY -c 'import json,sys; v=json.load(sys.stdin)["value"]; v[12]="0x03"; print(" ".join(x[2:] for x in v))')
bpftool map update pinned "$PIN/services" key hex $SVC_KEY value hex $stale
e2e_check "a stale copy of the services entry (down mask 3) is in the map" eq "$(down_mask)" 3
fsctl failover classifier 1 >/dev/null
e2e_check "after an operator's command the daemon writes its own entry again (down mask 0)" \
	wait_until 3 down_mask_is 0

# -- SIGHUP: add a service; a broken file is refused and the old config stays
# (each reload waited for: the daemon logs "reloaded FILE" when it is done)
reloads() { grep -c "reloaded $CFG" "$DLOG" || true; }
reload_and_wait() {
	local before
	before=$(reloads)
	kill -HUP "$E2E_DAEMON_PID"
	wait_until 5 eval '[ "$(reloads)" -gt "$before" ]'
}
e2e_config "[service extra]" "address = 198.18.9.9:80" "backends = $BAK4:$SVC_PORT"
e2e_check "SIGHUP: reload done" reload_and_wait
e2e_check "SIGHUP reload adds the new service" bash -c "$(declare -f edge fsctl); FS=$FS P=$P PIN=$PIN; fsctl status extra | grep -q 198.18.9.9"
e2e_check "... and keeps the active backend of the others" eq "$(active_backend)" 1
e2e_check "the new service steers (virtual IP)" eq "$(site_of "${P}cli" "http://198.18.9.9:80/classify")" backup
out=$(fsctl failover extra 2>&1) && rc=0 || rc=$?
e2e_check "failover of a service with a single backend exits 2 and says why" \
	eq "$rc:$(grep -c 'single backend' <<<"$out")" "2:1"
# The backends listed the other way round: the service stays forced to the same site.
SVC_BACKENDS="$BAK4:$SVC_PORT $PRI4:$SVC_PORT" e2e_config "[service extra]" "address = 198.18.9.9:80" "backends = $BAK4:$SVC_PORT"
e2e_check "SIGHUP: reload done" reload_and_wait
e2e_check "SIGHUP with the backends reordered: still forced to the backup, now index 0, and it serves" \
	eq "$(active_backend):$(fsctl status classifier | grep -c FORCED):$(site_of "${P}cli" "http://$PRI4:$SVC_PORT/classify")" "0:1:backup"
e2e_config "[service extra]" "address = 198.18.9.9:80" "backends = $BAK4:$SVC_PORT"
e2e_check "SIGHUP: reload done" reload_and_wait
e2e_check "... and back in the first order: index 1 again" eq "$(active_backend)" 1
# A backend that replaces another by reload counts from zero: it must not take over the
# removed one's counters (nor the events of its remaining connections).
extra_attempts() {
	fsctl status --json extra | $PY -c 'import json,sys; print(json.load(sys.stdin)["services"][0]["backends"][0]["totals"]["attempts"])'
}
e2e_check "[extra] its backend counted the connection" ge "$(extra_attempts)" 1
e2e_config "[service extra]" "address = 198.18.9.9:80" "backends = 198.18.3.77:80"
e2e_check "SIGHUP: reload done" reload_and_wait
e2e_check "a backend added by reload in place of another starts at zero attempts" eq "$(extra_attempts)" 0
e2e_config "[service extra]" "address = 198.18.9.9:80" "backends = $BAK4:$SVC_PORT"
e2e_check "SIGHUP: reload done" reload_and_wait
# -- tc_attach changed under the load, by reload and by restart, both ways: each hook gets
# the new kind before the old one goes (no request may fail: checked below)
TC_ATTACH=clsact e2e_config "[service extra]" "address = 198.18.9.9:80" "backends = $BAK4:$SVC_PORT"
e2e_check "SIGHUP: reload done" reload_and_wait
e2e_check "SIGHUP with tc_attach = clsact: filters in place of the tcx links, whose pins go" \
	eq "$(hooked "${P}e0"):$(hooked "${P}e2" egress):$(link_pins)" "clsact $(pinned_prog):clsact $(pinned_prog egress):0"
prog_before=$(pinned_prog)
e2e_stop_daemon
e2e_start_daemon
e2e_check "restart with tc_attach = clsact: the filters run its own programs" \
	eq "$(hooked "${P}e0"):$(hooked "${P}e1" egress):$([ "$(pinned_prog)" != "$prog_before" ] && echo new)" \
	"clsact $(pinned_prog):clsact $(pinned_prog egress):new"
e2e_config "[service extra]" "address = 198.18.9.9:80" "backends = $BAK4:$SVC_PORT"
e2e_check "SIGHUP: reload done" reload_and_wait
e2e_check "SIGHUP back to tc_attach = auto: $AUTO again, the filters gone if tcx" \
	eq "$(hooked "${P}e0"):$(hooked "${P}e2" egress):$(link_pins)" "$AUTO $(pinned_prog):$AUTO $(pinned_prog egress):$AUTO_LINKS"
cp "$WORK/bad.conf" "$CFG"
kill -HUP "$E2E_DAEMON_PID"
e2e_check "SIGHUP with a bad file: warning with file:line, daemon keeps running" \
	wait_until 5 bash -c "grep -q 'reload: .*:6: failover_threshold' '$DLOG' && kill -0 $E2E_DAEMON_PID"
fsctl auto classifier >/dev/null
e2e_check "returning to auto is logged" wait_until 2 grep -q "service classifier: auto: back to automatic decisions" "$DLOG"
load_wait
L="$WORK/run.log"
failed=$(awk -F'\t' 'NR>1 && $3!="reopen" && $5!="ok"' "$L" | wc -l)
long=$(awk -F'\t' '$3=="long" && $5=="ok"' "$L" | wc -l)
report "requests $(($(wc -l <"$L") - 1)), failed $failed, long-lived ok $long"
e2e_check "no request failed through kill -9, restart and reloads" eq "$failed" 0
e2e_check "long-lived connections kept working" ge "$long" 150

# -- detach refuses what is not an idle failsteer pin directory, and removes nothing
filters() { hooked "${P}e0" | wc -w | awk '{ print $1 / 2 }'; }
out=$(fsctl detach 2>&1) && rc=0 || rc=$?
e2e_check "detach while the daemon runs: exit 1, says why; filters, pins and daemon kept" \
	eq "$rc:$(grep -c 'daemon is running with this pin_path' <<<"$out"):$(filters):$(test -e "$PIN/flows" && kill -0 "$E2E_DAEMON_PID" && echo kept)" \
	"1:1:1:kept"
mkdir "$WORK/notbpf" && echo keep >"$WORK/notbpf/services"
out=$(edge "$FS" detach -p "$WORK/notbpf" 2>&1) && rc=0 || rc=$?
e2e_check "detach on a directory not on bpffs: exit 1, says why, its files and the filters kept" \
	eq "$rc:$(grep -c 'not a directory on a bpf filesystem' <<<"$out"):$(cat "$WORK/notbpf/services"):$(filters)" "1:1:keep:1"
out=$(edge "$FS" detach -p "/sys/fs/bpf/${P}-typo" 2>&1) && rc=0 || rc=$?
e2e_check "detach on a missing pin path: exit 1 without --force, names it, filters kept" \
	eq "$rc:$(grep -c "no pins under /sys/fs/bpf/${P}-typo" <<<"$out"):$(filters)" "1:1:1"
# The root of a bpffs mount is no pin directory (nor a pin_path for run: config aside).
mkdir "$WORK/bpfroot" && mount -t bpf bpf "$WORK/bpfroot"
out=$(edge "$FS" detach --force -p "$WORK/bpfroot" 2>&1) && rc=0 || rc=$?
e2e_check "detach on the root of a bpffs mount: exit 1 even with --force, says why, filters kept" \
	eq "$rc:$(grep -c 'root of a bpf filesystem mount' <<<"$out"):$(filters)" "1:1:1"
mkdir "$PIN-second"
out=$(edge "$FS" detach -p "$PIN-second" 2>&1) && rc=0 || rc=$?
e2e_check "detach on a bpffs directory without failsteer pins: exit 1 without --force, filters kept" \
	eq "$rc:$(grep -c "no failsteer pins under $PIN-second" <<<"$out"):$(filters)" "1:1:1"
rmdir "$PIN-second"
# A second daemon with another pin_path on the same interfaces would silently replace the
# first one's filters: refused before it creates anything.
filter_prog() { hooked "${P}e0"; }
prog_before=$(filter_prog)
e2e_config # (the running daemon's file held the bad config: it is read on a reload only)
# (On lo: the daemon's interfaces carry its filters, which another pin_path may not take.)
sed "s|^pin_path = .*|pin_path = $WORK/bpfroot|; s|^metrics_listen = .*|metrics_listen = off|; s|^interfaces = .*|interfaces = lo|" \
	"$CFG" >"$WORK/rootpin.conf"
out=$(edge timeout 10 "$FS" run -c "$WORK/rootpin.conf" 2>&1) && rc=0 || rc=$?
# (A fresh bpffs holds the kernel's maps.debug and progs.debug.)
e2e_check "run with pin_path on the root of a bpffs mount: exit 1, says why, nothing pinned there" \
	eq "$rc:$(grep -c 'root of a bpf filesystem mount' <<<"$out"):$(ls -A "$WORK/bpfroot" | grep -vc '\.debug$')" "1:1:0"
umount "$WORK/bpfroot"
sed "s|^pin_path = .*|pin_path = $PIN-second|" "$CFG" >"$WORK/second.conf"
out=$(edge timeout 10 "$FS" run -c "$WORK/second.conf" 2>&1) && rc=0 || rc=$?
report "second daemon: exit $rc, $(head -c 300 <<<"$out")"
e2e_check "a second daemon with another pin_path on the same interfaces: exit 1, names the first's pins, first kept" \
	eq "$rc:$(grep -c "the failsteer data path pinned under $PIN steers through it" <<<"$out"):$(filter_prog):$(test -e "$PIN-second" && echo created)" \
	"1:1:$prog_before:"

# -- a config whose map sizes differ from the pinned maps is refused, state untouched
e2e_stop_daemon
FLOW_TABLE_SIZE=64 e2e_config
out=$(edge timeout 10 "$FS" run -c "$CFG" 2>&1) && rc=0 || rc=$?
e2e_check "a different flow_table_size than the pinned table is refused with the reason, exit 2" \
	eq "$rc:$(grep -c 'has 65536 entries but the config asks for 64' <<<"$out")" "2:1"
e2e_check "... and the pinned state is still there" test -e "$PIN/flows"
# A config naming a missing interface, with the backends reordered: refused before the
# pinned services map is touched.
services_before=$(bpftool map dump pinned "$PIN/services" 2>/dev/null | md5sum)
SVC_BACKENDS="$BAK4:$SVC_PORT $PRI4:$SVC_PORT" e2e_config
sed -i "s/^interfaces = .*/& ${P}nosuch/" "$CFG"
out=$(edge timeout 10 "$FS" run -c "$CFG" 2>&1) && rc=0 || rc=$?
e2e_check "a missing interface is refused (exit 1, named) and the services map is untouched" \
	eq "$rc:$(grep -c "interface ${P}nosuch: No such device" <<<"$out"):$(bpftool map dump pinned "$PIN/services" 2>/dev/null | md5sum)" \
	"1:1:$services_before"
# Nor can it serve its metrics on an address the node does not have: refused the same way.
SVC_BACKENDS="$BAK4:$SVC_PORT $PRI4:$SVC_PORT" METRICS_LISTEN=198.18.77.77:9469 e2e_config
out=$(edge timeout 10 "$FS" run -c "$CFG" 2>&1) && rc=0 || rc=$?
e2e_check "metrics_listen on an address not here is refused (exit 1, named) and the services map is untouched" \
	eq "$rc:$(grep -c "metrics_listen 198.18.77.77:9469: cannot listen" <<<"$out"):$(bpftool map dump pinned "$PIN/services" 2>/dev/null | md5sum)" \
	"1:1:$services_before"
e2e_config

# -- detach works without CAP_SYS_ADMIN (the DaemonSet has none): the pinned programs tell
# its filters apart. Pointed at other pins (--force: there are none), it cannot tell
# (opening a program by id takes CAP_SYS_ADMIN) and removes nothing rather than leaving
# programs without pins.
nocap() { edge setpriv --bounding-set -sys_admin --inh-caps -sys_admin "$@"; }
out=$(nocap "$FS" detach --force -p "/sys/fs/bpf/${P}-elsewhere" 2>&1) && rc=0 || rc=$?
e2e_check "detach without CAP_SYS_ADMIN, other pins: exit 1, says why, removes nothing" \
	eq "$rc:$(grep -c 'needs CAP_SYS_ADMIN' <<<"$out"):$(filters)" "1:1:1"
e2e_check "... and the pins are still there" test -e "$PIN/flows"
out=$(nocap "$FS" detach -p "$PIN" 2>&1)
e2e_check "detach (without CAP_SYS_ADMIN) removes the programs from the 6 hooks" \
	grep -q "removed 6 failsteer program(s) from the TC hooks" <<<"$out"
e2e_check "detach removes the pins" test ! -e "$PIN"
e2e_check "... and the links: nothing is left on the hooks" eq "$(hooked "${P}e0"):$(hooked "${P}e2" egress)" ":"
e2e_check "after detach the primary answers directly" eq "$(site_of "${P}cli" "http://$PRI4:$SVC_PORT/classify")" primary

# -- no eviction is reported that did not happen: the daemon starts in the middle of a
# saturating load (its first walk of the table races with thousands of new connections a
# second); the table, far from full, loses nothing, and the daemon must not say otherwise.
BENCH_BIN="$(dirname "$FS")/bench"
ip netns exec "${P}pri" "$BENCH_BIN/bench_server" --listen "$PRI4:9000" --site primary >/dev/null 2>&1 &
churn_srv=$!
FLOW_TABLE_SIZE=262144 e2e_config "[service churn]" "address = $PRI4:9000" "backends = $PRI4:9000 $BAK4:9000"
ip netns exec "${P}cli" "$BENCH_BIN/bench_client" --target "$PRI4:9000" --workers 4 --concurrency 16 \
	--duration 4 --warmup 0 >"$WORK/churn.json" &
churn=$!
sleep 1
evicted_before=$(grep -c "entries evicted" "$DLOG" || true)
started=$(now)
e2e_start_daemon
wait "$churn" || true
churn_ok=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["ok"])' "$WORK/churn.json" 2>/dev/null || echo 0)
report "connections while the daemon started: $churn_ok"
e2e_check "[churn] thousands of connections while the daemon started" ge "$churn_ok" 5000
# The daemon walks the table when it starts and every 10 s: the second walk would report.
sleep "$(echo "11 - ($(now) - $started)" | bc -l | sed 's/^-.*/0/')"
e2e_check "[churn] no flow-table eviction reported (the table never filled)" \
	eq "$(grep -c 'entries evicted' "$DLOG" || true)" "$evicted_before"
e2e_stop_daemon
kill "$churn_srv" 2>/dev/null || true
wait "$churn_srv" 2>/dev/null || true
fsctl detach >/dev/null

# -- a flow table too small for the load: evictions are counted, not silent. 40 open
# connections need 80 entries (closed ones leave the table, so only open ones fill it).
METRICS_LISTEN=127.0.0.1:9479 FLOW_TABLE_SIZE=64 e2e_config
e2e_start_daemon
load_start "${P}cli" small "$PRI4:$SVC_PORT" 20 11 --long-lived 40 --long-interval-ms 250
load_wait
evictions=$(ip netns exec "${P}edge" curl -s -m 2 http://127.0.0.1:9479/metrics | awk '$1=="failsteer_flow_table_evictions_total" {print $2}')
report "flow table of 64 entries after 11 s with 40 long-lived connections: evictions counted ${evictions:-none}"
e2e_check "flow-table evictions are counted" ge "${evictions:-0}" 1

# -- a failback hold under way survives a restart, for any backend: three backends, the
# first an address nobody answers (so the service runs on the second), the second reset
# and repaired while the third serves; a kill -9 two seconds into the second's 4 s hold
# and a restart 2 s later must neither start the hold again nor count the 2 s without a
# daemon toward it: failback comes about 2 s after the restart.
e2e_stop_daemon
fsctl detach >/dev/null
DEAD4=198.18.3.99
SVC_BACKENDS="$DEAD4:$SVC_PORT $PRI4:$SVC_PORT $BAK4:$SVC_PORT" FAILBACK_HOLD_MS=4000 e2e_config
e2e_start_daemon
active_is() { [ "$(active_backend)" = "$1" ]; }
good_since_ms() { # BACKEND_ID
	bpftool -j map lookup pinned "$PIN/backend_model" key "$1" 0 0 0 2>/dev/null |
		$PY -c 'import json,sys; d=json.load(sys.stdin); print(d.get("formatted", d)["value"]["good_since_ms"])'
}
good_since_set() { [ "$(good_since_ms 1)" -gt 0 ] 2>/dev/null; }
load_start "${P}cli" hold "$PRI4:$SVC_PORT" 20 50
e2e_check "[hold] a dead first backend: the service runs on the second" wait_until 10 active_is 1
bash "$E2E_ROOT/scripts/fault.sh" "$P" reset >/dev/null
e2e_check "[hold] the second reset: on the third" wait_until 5 active_is 2
bash "$E2E_ROOT/scripts/fault.sh" "$P" repair >/dev/null
e2e_check "[hold] the second repaired: its failback hold starts" wait_until 10 good_since_set
sleep 2
kill -KILL "$E2E_DAEMON_PID"
wait "$E2E_DAEMON_PID" 2>/dev/null || true
E2E_DAEMON_PID=""
sleep 2
e2e_start_daemon
restart_at=$(now)
wait_until 6 active_is 1 || true
failback_after=$(echo "$(now) - $restart_at" | bc -l)
report "failback to the second backend $(printf %.2f "$failback_after") s after a restart 2 s into its 4 s hold and 2 s away"
e2e_check "[hold] a failback hold under way carries on through a restart, the time away not counted (failback 1.2-3 s after it)" \
	$PY -c "import sys; t = float(sys.argv[1]); sys.exit(0 if 1.2 <= t < 3.0 else 1)" "$failback_after"
# Again, but a reload makes the failback threshold stricter two seconds into the hold: the
# time spent above the old threshold says nothing about the new one, so the hold restarts.
bash "$E2E_ROOT/scripts/fault.sh" "$P" reset >/dev/null
e2e_check "[hold] the second reset again: on the third" wait_until 5 active_is 2
# 'failover' without a backend forces the first backup not believed down: the third here.
out=$(fsctl failover classifier 2>&1)
fsctl auto classifier >/dev/null
e2e_check "failover with no backend given skips a backup believed down (forced to backend 2)" \
	grep -q "forced to backend 2" <<<"$out"
bash "$E2E_ROOT/scripts/fault.sh" "$P" repair >/dev/null
e2e_check "[hold] the second repaired again: its failback hold starts" wait_until 10 good_since_set
sleep 2
SVC_BACKENDS="$DEAD4:$SVC_PORT $PRI4:$SVC_PORT $BAK4:$SVC_PORT" FAILBACK_HOLD_MS=4000 \
	e2e_config "failback_threshold = 0.999"
kill -HUP "$E2E_DAEMON_PID"
reload_at=$(now)
# The hold may have grown (a failover soon after a failback backs off): the log says.
e2e_check "[hold] failback after the reload" wait_until 20 active_is 1
failback_after=$(echo "$(now) - $reload_at" | bc -l)
hold=$(grep "service classifier: failback: backend 2 -> 1" "$DLOG" | tail -1 | grep -o "hold=[0-9.]*" | cut -d= -f2)
report "failback $(printf %.2f "$failback_after") s after a reload to a stricter threshold 2 s into a ${hold:-?} s hold"
e2e_check "[hold] a stricter threshold by reload restarts the hold (a whole hold after it, not 2 s less)" \
	$PY -c "import sys; sys.exit(0 if float(sys.argv[1]) >= float(sys.argv[2]) - 0.5 else 1)" \
	"$failback_after" "${hold:-99}"
load_wait

# -- what happens while no daemon runs is not evidence: the primary site (here the second
# backend, active) resets connections for 2 s of load while the daemon is away (the data
# path retries them at the third), and is repaired before the restart. Read in one tick,
# those counters would fail the healthy site over.
resets_of_second() {
	fsctl status --json classifier | $PY -c 'import json,sys; print(json.load(sys.stdin)["services"][0]["backends"][1]["totals"]["resets"])'
}
resets_before=$(resets_of_second)
kill -KILL "$E2E_DAEMON_PID"
wait "$E2E_DAEMON_PID" 2>/dev/null || true
E2E_DAEMON_PID=""
load_start "${P}cli" away "$PRI4:$SVC_PORT" 50 3
bash "$E2E_ROOT/scripts/fault.sh" "$P" reset >/dev/null
sleep 2
bash "$E2E_ROOT/scripts/fault.sh" "$P" repair >/dev/null
load_wait
resets_away=$(($(resets_of_second) - resets_before))
report "resets of the second backend counted while no daemon ran: $resets_away"
e2e_check "[away] the data path counted the resets meanwhile" ge "$resets_away" 20
e2e_start_daemon
sleep 3
e2e_check "[away] faults seen while no daemon ran do not fail over a site healthy at restart" \
	eq "$(active_backend)" 1

# -- a reload that removes the active backend puts the service on the first backend not
# believed down (here the backup: the first is the dead address), not blindly on the first
# (which the next tick would fail over again, counted as a failover).
failovers() { fsctl status --json classifier | $PY -c 'import json,sys; print(json.load(sys.stdin)["services"][0]["failovers"])'; }
failovers_before=$(failovers)
SVC_BACKENDS="$DEAD4:$SVC_PORT $BAK4:$SVC_PORT" FAILBACK_HOLD_MS=4000 e2e_config "failback_threshold = 0.999"
e2e_check "SIGHUP: reload done" reload_and_wait
sleep 0.5
e2e_check "[removed] the active backend removed by reload: on the backup at once, no failover counted" \
	eq "$(active_backend):$(failovers):$(site_of "${P}cli" "http://$PRI4:$SVC_PORT/classify")" "1:$failovers_before:backup"

# -- the daemon sweeps what the data path cannot see end: an idle connection's two entries
# leave the table flow_idle_timeout_s after its last packet (at the next sweep, every
# 10 s), so abandoned connections do not fill it; its later packets pass unsteered (to the
# same address: the service is on the primary's own address and the primary is active).
SVC_BACKENDS="$DEAD4:$SVC_PORT $PRI4:$SVC_PORT $BAK4:$SVC_PORT" FAILBACK_HOLD_MS=4000 \
	FLOW_IDLE_TIMEOUT_S=2 e2e_config "failback_threshold = 0.999"
e2e_check "SIGHUP: reload done" reload_and_wait
# Back on the primary's site (added again by the reload: a new backend, no hold yet), by
# hand: forced, seen by the daemon, then automatic again.
autos_on_1() { grep -c "service classifier: auto: back to automatic decisions (operator), on backend 1" "$DLOG" || true; }
autos_before=$(autos_on_1)
fsctl failover classifier 1 >/dev/null
sleep 0.5
fsctl auto classifier >/dev/null
e2e_check "[sweep] back on the primary's site by hand, automatic again" \
	wait_until 3 eval '[ "$(autos_on_1)" -gt "$autos_before" ] && [ "$(active_backend)" = 1 ]'
ip netns exec "${P}cli" $PY - "$PRI4" "$SVC_PORT" >"$WORK/idle.out" 2>&1 <<'PYIDLE' &
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
print("port", s.getsockname()[1], flush=True)
time.sleep(16)
s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
print("answer", s.recv(4096).split(b"\r\n")[0].decode(), flush=True)
PYIDLE
IDLE_PID=$!
# Entries of the connection from the client's port $1 (a key's address words and ports are
# in network order: the client is the FWD key's source, the REV key's destination).
entries_of_port() {
	bpftool -j map dump pinned "$PIN/flows" 2>/dev/null | $PY -c '
import ipaddress, json, sys
p = int(sys.argv[1]); be = (p >> 8) | ((p & 255) << 8)
cli = int.from_bytes(ipaddress.ip_address(sys.argv[2]).packed, "little")
keys = [e["formatted"]["key"] for e in json.load(sys.stdin)]
print(sum(1 for k in keys if (k["src"][0], k["sport"]) == (cli, be) or (k["dst"][0], k["dport"]) == (cli, be)))' "$1" "$CLI4"
}
wait_until 3 grep -q port "$WORK/idle.out" || true
idle_port=$(awk '/^port/ {print $2}' "$WORK/idle.out")
e2e_check "[sweep] an idle connection has its two entries" eq "$(entries_of_port "$idle_port")" 2
swept_by() { [ "$(entries_of_port "$idle_port")" = 0 ]; }
t0=$(now)
e2e_check "[sweep] its entries are swept once idle for flow_idle_timeout_s (within 14 s)" wait_until 14 swept_by
report "idle connection's entries swept $(printf %.1f "$(echo "$(now) - $t0" | bc -l)") s after it went idle (timeout 2 s, sweep every 10 s)"
wait "$IDLE_PID" 2>/dev/null || true
e2e_check "[sweep] the swept connection still works (unsteered, same address)" grep -q "answer HTTP/1.1 200" "$WORK/idle.out"

# -- a reload that fails while rebuilding (here the services map is frozen, so writing it
# fails) stops the daemon with exit 1 instead of running on with services half set up;
# the data path keeps steering with the last decisions.
bpftool map freeze pinned "$PIN/services"
kill -HUP "$E2E_DAEMON_PID"
for i in $(seq 50); do kill -0 "$E2E_DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$E2E_DAEMON_PID" 2>/dev/null; then
	rc=running
	e2e_stop_daemon
else
	wait "$E2E_DAEMON_PID" 2>/dev/null && rc=0 || rc=$?
	E2E_DAEMON_PID=""
fi
e2e_check "a reload failing halfway stops the daemon with exit 1 and says why" \
	eq "$rc:$(grep -c 'reload: writing service classifier: Operation not permitted; stopping (exit 1)' "$DLOG")" "1:1"
e2e_check "... and the data path still steers" eq "$(site_of "${P}cli" "http://$PRI4:$SVC_PORT/classify")" primary
e2e_finish
