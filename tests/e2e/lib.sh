# shellcheck shell=bash
# Shared by the namespace tests: a unique prefix, failsteer started in the edge namespace
# (nsenter --net only, so its bpffs pins stay visible), checks that print PASS/FAIL, and a
# teardown that always runs and dumps the logs that explain a failure.
#
# A test script: source this, call e2e_init NAME, build what it needs, call e2e_check ...,
# and end with e2e_finish. BUILD (first argument of the script) holds the failsteer binary.

E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/topo.sh
source "$E2E_ROOT/scripts/topo.sh"
PY=/usr/bin/python3
E2E_FAILS=0
E2E_PASSES=0
E2E_DAEMON_PID=""

e2e_init() { # NAME (1-3 letters; the prefix adds digits no live run uses)
	E2E_NAME=$1
	BUILD=${BUILD:-${E2E_ARG_BUILD:-build}}
	FS="$E2E_ROOT/$BUILD/failsteer"
	[ -x "$FS" ] || FS="$BUILD/failsteer"
	[ -x "$FS" ] || { echo "SKIP: no failsteer binary in $BUILD"; exit 77; }
	[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
	topo_claim_prefix "$1" || exit 1
	PIN="/sys/fs/bpf/fs-test-$P"
	WORK="" DLOG=""
	# Set at once: a timeout's SIGTERM must still tear down, with a failing status (the
	# EXIT trap alone would run with status 0 and not show the logs).
	trap e2e_teardown EXIT
	trap 'exit 143' TERM INT HUP
	WORK=$(mktemp -d "/tmp/fs-e2e-$P.XXXXXX")
	CFG="$WORK/failsteer.conf"
	DLOG="$WORK/failsteer.log"
	e2e_cleanup_stale
}

# An earlier crash may have left this prefix's namespaces or pins behind.
e2e_cleanup_stale() {
	topo_down "$P" >/dev/null 2>&1 || true
	if [ -d "$PIN" ]; then
		rm -f "$PIN"/* 2>/dev/null || true
		rmdir "$PIN" 2>/dev/null || true
	fi
	rmdir "$PIN-second" 2>/dev/null || true # test_daemon's refused second daemon
}

e2e_teardown() {
	local rc=$?
	e2e_stop_daemon
	if [ "$E2E_FAILS" -gt 0 ] || [ $rc -ne 0 ]; then
		echo "---- logs of the failed run ($WORK) ----"
		for f in "$DLOG" "$WORK"/*.out /tmp/"$P"-primary.log /tmp/"$P"-backup.log; do
			[ -s "$f" ] || continue
			echo "== $f (last 40 lines)"
			tail -n 40 "$f" | sed 's/^/    /'
		done
	fi
	if [ -d "$PIN" ] && [ -e "/run/netns/${P}edge" ]; then
		nsenter --net="/run/netns/${P}edge" "$FS" detach -p "$PIN" >/dev/null 2>&1 || true
	fi
	topo_down "$P" >/dev/null 2>&1 || true
	e2e_cleanup_stale
	rm -f /tmp/"$P"-*.pid /tmp/"$P"-*.log /tmp/"$P"-*.args 2>/dev/null || true
	# A test's own mounts (test_daemon's private bpffs) go before its files.
	[ -z "$WORK" ] || awk -v w="$WORK/" 'index($2, w) == 1 {print $2}' /proc/mounts | xargs -r umount -l 2>/dev/null || true
	[ -z "$WORK" ] || rm -rf "$WORK"
	topo_release_prefix
	exit $rc
}

# wait_until SECONDS COMMAND...: polls every 0.2 s; status 1 on timeout.
wait_until() {
	local end=$(($(date +%s%N) + $1 * 1000000000))
	shift
	until "$@"; do
		[ "$(date +%s%N)" -lt "$end" ] || return 1
		sleep 0.2
	done
}

e2e_check() { # DESCRIPTION COMMAND... : PASS if the command succeeds
	local what=$1
	shift
	if "$@"; then
		echo "PASS: $what"
		E2E_PASSES=$((E2E_PASSES + 1))
	else
		echo "FAIL: $what"
		E2E_FAILS=$((E2E_FAILS + 1))
	fi
}

e2e_finish() {
	echo "== $E2E_NAME: $E2E_PASSES passed, $E2E_FAILS failed =="
	[ "$E2E_FAILS" -eq 0 ]
}

# Writes the config for the topology: gateway mode attaches to the three edge devices.
e2e_config() { # [extra service lines...]
	cat >"$CFG" <<EOF
[global]
interfaces = ${P}e0 ${P}e1 ${P}e2
tick_ms = ${TICK_MS:-100}
flow_table_size = ${FLOW_TABLE_SIZE:-65536}
flow_idle_timeout_s = ${FLOW_IDLE_TIMEOUT_S:-3600}
pin_path = $PIN
metrics_listen = ${METRICS_LISTEN:-off}
tc_attach = ${TC_ATTACH:-auto}

[service classifier]
address = ${SVC_ADDR:-$PRI4:$SVC_PORT}
backends = ${SVC_BACKENDS:-$PRI4:$SVC_PORT $BAK4:$SVC_PORT}
connect_timeout_ms = ${CONNECT_TIMEOUT_MS:-300}
failback_hold_ms = ${FAILBACK_HOLD_MS:-3000}
probe_interval_ms = ${PROBE_INTERVAL_MS:-200}
EOF
	local line
	for line in "$@"; do echo "$line" >>"$CFG"; done
}

edge() { nsenter --net="/run/netns/${P}edge" "$@"; }
fsctl() { edge "$FS" "$@" -p "$PIN"; }
# What the kernel has on the edge's DEV, hook ingress or egress: "KIND ID" for each program
# (KIND tcx for a tcx link, clsact for the filter at failsteer's handle), "" for none.
hooked() { # DEV [ingress|egress]
	edge $PY "$E2E_ROOT/tests/e2e/hook_progs.py" "$1" "${2:-ingress}" |
		awk '{ for (i = 2; i <= NF; i++) printf "%s%s %s", (n++ ? " " : ""), $1, $i }'
}
# What tc_attach = auto makes here: tcx (links, Linux 6.6+) or clsact (filters).
auto_kind() { $PY "$E2E_ROOT/tests/e2e/hook_progs.py" --has-tcx && echo tcx || echo clsact; }
# The id of the program pinned for the ingress (or egress) hook.
pinned_prog() { bpftool prog show pinned "$PIN/prog_tc_${1:-ingress}" 2>/dev/null | head -n 1 | cut -d: -f1; }
link_pins() { find "$PIN" -maxdepth 1 -name 'link_tc_*' 2>/dev/null | wc -l; }

e2e_start_daemon() {
	local i before
	before=$(grep -c "attached to" "$DLOG" 2>/dev/null || true)
	# Not through a shell function: $! must be failsteer itself (nsenter execs it) so
	# that signals reach the daemon.
	nsenter --net="/run/netns/${P}edge" "$FS" run -c "$CFG" >>"$DLOG" 2>&1 &
	E2E_DAEMON_PID=$!
	# Up to 30 s: loading (the verifier) and attaching can take long on a busy machine.
	for i in $(seq 300); do
		if [ "$(grep -c "attached to" "$DLOG" 2>/dev/null || true)" -gt "${before:-0}" ]; then return 0; fi
		kill -0 "$E2E_DAEMON_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "failsteer did not come up:" >&2
	cat "$DLOG" >&2
	return 1
}

e2e_stop_daemon() { # [SIGNAL]
	[ -n "$E2E_DAEMON_PID" ] || return 0
	kill "-${1:-TERM}" "$E2E_DAEMON_PID" 2>/dev/null || true
	local i
	for i in $(seq 50); do
		kill -0 "$E2E_DAEMON_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$E2E_DAEMON_PID" 2>/dev/null || true
	wait "$E2E_DAEMON_PID" 2>/dev/null || true
	E2E_DAEMON_PID=""
}

# One HTTP request from a namespace; prints the site that answered.
site_of() { # NS TARGET_URL
	ip netns exec "$1" curl -s -m 3 -X POST --data-binary 'image-bytes' "$2" |
		$PY -c 'import json,sys; print(json.load(sys.stdin)["site"])' 2>/dev/null
}

active_backend() { # prints the classifier service's active index
	fsctl status --json classifier | $PY -c 'import json,sys; print(json.load(sys.stdin)["services"][0]["active"])'
}

now() { date +%s.%N; }

# loadgen from a namespace in the background; the log is $WORK/NAME.log.
load_start() { # NS NAME TARGET RATE DURATION [extra loadgen args]
	local ns=$1 name=$2 target=$3 rate=$4 dur=$5
	shift 5
	ip netns exec "$ns" $PY "$E2E_ROOT/scripts/loadgen.py" --target "$target" --rate "$rate" \
		--duration "$dur" --log "$WORK/$name.log" "$@" >"$WORK/$name.out" 2>&1 &
	LOAD_PID=$!
}

load_wait() { wait "$LOAD_PID" 2>/dev/null || true; }

# analyze.py's JSON field: af FIELD LOG [analyze args]
af() {
	local field=$1 log=$2
	shift 2
	$PY "$E2E_ROOT/scripts/analyze.py" "$log" "$@" | $PY -c "import json,sys; v=json.load(sys.stdin).get('$field'); print('null' if v is None else v)"
}

# Floating-point comparison for checks: le A B (A <= B), ge, lt
le() { $PY -c "import sys; a,b=sys.argv[1:]; sys.exit(0 if a!='null' and float(a)<=float(b) else 1)" "$1" "$2"; }
ge() { $PY -c "import sys; a,b=sys.argv[1:]; sys.exit(0 if a!='null' and float(a)>=float(b) else 1)" "$1" "$2"; }
eq() { [ "$1" = "$2" ]; }
report() { echo "  measured: $*"; }
