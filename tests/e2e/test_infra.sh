#!/bin/bash
# test_infra.sh - self-test of the e2e test infrastructure, WITHOUT failsteer:
# scripts/topo.sh, classifier.py, loadgen.py, analyze.py and fault.sh.
# Usage (root): bash tests/e2e/test_infra.sh BUILD_DIR
# Load goes from the cli namespace straight to a site (the edge only routes).
# Prints PASS/FAIL per check; exit 0 all passed, 1 a check failed, 77 skipped.
# Leaves no namespace, process or file behind. Takes about 40 s.
# shellcheck disable=SC2016 # eval'd checks are single-quoted on purpose
set -eu
: "${1:?usage: test_infra.sh BUILD_DIR}" # taken like every e2e test, not needed here
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=/usr/bin/python3
S=$ROOT/scripts

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
for c in ip nft ethtool $PY; do
	command -v "$c" >/dev/null || { echo "SKIP: $c not installed"; exit 77; }
done

# shellcheck source=scripts/topo.sh
. "$S/topo.sh"
topo_claim_prefix fi || exit 1
WORK=$(mktemp -d "/tmp/$P-infra.XXXXXX")
npass=0 nfail=0
T0=$(date +%s)

cleanup() {
	local rc=$?
	set +e
	if [ $rc -ne 0 ] || [ $nfail -ne 0 ]; then
		echo "---- logs ($WORK, /tmp/$P-*.log) ----"
		for f in "$WORK"/* /tmp/"$P"-*.log; do
			[ -f "$f" ] || continue
			echo "== $f (last 25 lines)"
			tail -n 25 "$f" | sed 's/^/    /'
		done
	fi
	topo_down "$P"
	topo_release_prefix
	rm -rf "$WORK" "/tmp/$P-primary.log" "/tmp/$P-backup.log" "/tmp/$P-rst.pid" "/tmp/$P-rst.log"
	[ $rc -eq 0 ] && [ $nfail -ne 0 ] && rc=1
	echo "== test_infra: $npass passed, $nfail failed, $(($(date +%s) - T0)) s =="
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pass() { echo "PASS $*"; npass=$((npass + 1)); }
fail() { echo "FAIL $*"; nfail=$((nfail + 1)); }

# check DESC JSON EXPR: EXPR is Python over r = the JSON object.
check() {
	if J=$2 E=$3 $PY -c 'import json,os,sys
r = json.loads(os.environ["J"])
sys.exit(0 if eval(os.environ["E"]) else 1)'; then
		pass "$1"
	else
		fail "$1: want $3"
		echo "    got $2"
	fi
}

# Shell condition check: ok DESC CMD...
ok() {
	local d=$1
	shift
	if "$@"; then pass "$d"; else fail "$d"; fi
}

add() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", a + b }'; }

# lg NAME TARGET ARGS...: loadgen in the cli namespace, log $WORK/NAME.log.
lg() {
	local name=$1 target=$2
	shift 2
	ip netns exec "${P}cli" $PY "$S/loadgen.py" --target "$target" --log "$WORK/$name.log" "$@" \
		</dev/null >"$WORK/$name.out" 2>&1
}
lg_bg() { lg "$@" & LG_PID=$!; }
lg_wait() { wait "$LG_PID" || fail "loadgen exit status $?"; }

an() { # NAME [analyze args]
	local name=$1
	shift
	$PY "$S/analyze.py" "$WORK/$name.log" "$@"
}

# fault KIND [ARG]: runs fault.sh, prints the time the fault took effect.
fault() {
	local out
	out=$("$S/fault.sh" "$P" "$@") || { echo "fault.sh $* failed" >&2; return 1; }
	case $out in "fault $1 at "*) echo "${out##* }" ;; *) echo "fault.sh said: $out" >&2; return 1 ;; esac
}

has_fsfault() { ip netns exec "${P}pri" nft list tables 2>/dev/null | grep -q fsfault; }

# ---------------------------------------------------------------------------
# Prefixes: a run owns its prefix; a live owner's is skipped, a dead owner's reclaimed.
claim() { (topo_claim_prefix zq && echo "$P"); }
first=$(claim)
sleep 30 &
holder=$!
echo "$holder" >"/run/lock/failsteer-topo-$first.owner"
second=$(claim)
kill "$holder"
wait "$holder" 2>/dev/null || true
third=$(claim)
ok "prefix claim: a prefix owned by a live run is skipped ($first taken -> $second)" \
	test -n "$second" -a "$second" != "$first"
ok "prefix claim: a dead owner's prefix is reclaimed ($third)" test "$third" = "$first"
rm -f "/run/lock/failsteer-topo-$first.owner" "/run/lock/failsteer-topo-$second.owner"
# A run killed without its teardown: its namespace goes with the next claim. (A prefix
# claimed here, held by a process that then dies: no fixed name a concurrent run may use.)
sleep 30 &
holder=$!
dead=$(claim)
echo "$holder" >"/run/lock/failsteer-topo-$dead.owner"
ip netns add "${dead}cli"
kill "$holder"
wait "$holder" 2>/dev/null || true
third=$(claim)
# (the new claim may take the swept prefix: its owner file is then the new one's)
ok "prefix claim: a dead run's namespaces are swept ($dead)" \
	test -n "$dead" -a ! -e "/run/netns/${dead}cli" -a "$(cat "/run/lock/failsteer-topo-$dead.owner" 2>/dev/null)" != "$holder"
rm -f "/run/lock/failsteer-topo-$third.owner"
[ -z "$dead" ] || ip netns del "${dead}cli" 2>/dev/null || true

# ---------------------------------------------------------------------------
echo "# analyze.py on a synthetic log"
cat >"$WORK/synth.log" <<'EOF'
t_send	t_done	kind	conn	outcome	site	latency_ms
99.000000	99.001000	new	n0	ok	primary	1.000
99.500000	99.502000	new	n1	ok	primary	2.000
100.100000	101.100000	new	n2	timeout	-	1000.000
100.200000	100.210000	long	l0.0	reset	-	10.000
100.300000	100.301000	reopen	l0.1	ok	-	1.000
100.500000	100.600000	new	n3	ok	backup	100.000
100.700000	100.702000	new	n4	ok	backup	2.000
102.100000	102.200000	new	n5	ok	primary	100.000
102.300000	102.3
EOF
j=$(an synth --fault-at 100 --repair-at 102)
check "analyze counts" "$j" 'r["total"] == 7 and r["ok"] == 5 and r["failed"] == 2 and r["outcomes"]["timeout"] == 1 and r["outcomes"]["reset"] == 1'
check "analyze failover" "$j" 'r["failed_after_fault"] == 2 and r["first_backup_after_fault"] == 100.6 and abs(r["failover_s"] - 0.6) < 1e-6 and r["requests_in_window"] == 3 and r["failed_in_window"] == 2'
check "analyze failback" "$j" 'r["first_primary_after_repair"] == 102.2 and abs(r["failback_s"] - 0.2) < 1e-6 and r["failed_after_repair"] == 0'
check "analyze switches/sites/long" "$j" 'r["switches"] == 2 and r["sites"] == {"primary": 3, "backup": 2} and r["long_breaks"] == 1 and r["reopens"] == 1 and r["max_latency_ms"] == 100.0 and r["max_latency_ms_any"] == 1000.0'
j=$(an synth)
check "analyze without fault times" "$j" 'r["failover_s"] is None and r["failback_s"] is None and r["requests_in_window"] is None'
j=$(cd "$S" && $PY -c 'import analyze, json, sys; print(json.dumps(analyze.analyze(sys.argv[1], fault_at=100.0)))' "$WORK/synth.log")
check "analyze importable" "$j" 'r["failover_s"] is not None and abs(r["failover_s"] - 0.6) < 1e-6'

# ---------------------------------------------------------------------------
echo "# topology (prefix $P)"
topo_cleanup_stale "$P"
ok "topo_up $P off" topo_up "$P" off
n=$(ip netns list | grep -cE "^$P(cli|edge|pri|bak)( |\$)" || true)
ok "4 namespaces" [ "$n" = 4 ]
ok "topo_up refuses an existing topology" eval '! topo_up "$P" off 2>/dev/null'
ok "topo_ns" [ "$(topo_ns "$P" edge)" = "${P}edge" ]
ok "checksum offload off" eval 'ip netns exec "${P}edge" ethtool -k "${P}e1" | grep -q "^tx-checksumming: off"'
ok "edge forwards ipv4" [ "$(ip netns exec "${P}edge" sysctl -n net.ipv4.ip_forward)" = 1 ]
ok "start_site primary" start_site "$P" primary
ok "start_site backup" start_site "$P" backup
ok "start_site is idempotent" start_site "$P" primary

# ---------------------------------------------------------------------------
echo "# plain load, no fault"
lg v4pri "$PRI4:$SVC_PORT" --rate 50 --duration 3 --long-lived 2 --live
j=$(an v4pri)
check "v4 primary: all ok, served by primary" "$j" 'r["failed"] == 0 and 148 <= r["by_kind"]["new"] <= 151 and r["by_kind"]["long"] >= 25 and r["sites"] == {"primary": r["ok"]} and r["switches"] == 0'
ok "loadgen --live prints per-second lines" grep -q '^t=2s ok=[0-9]* backup=0 primary=[0-9]* failed=0$' "$WORK/v4pri.out"
ok "loadgen prints a summary" grep -q '^summary: .*failed=0' "$WORK/v4pri.out"
ok "log header" [ "$(head -n 1 "$WORK/v4pri.log")" = "$(printf 't_send\tt_done\tkind\tconn\toutcome\tsite\tlatency_ms\tconnect_ms')" ]

lg v4bak "$BAK4:$SVC_PORT" --rate 50 --duration 3 --long-lived 2
check "v4 backup: all ok, served by backup" "$(an v4bak)" 'r["failed"] == 0 and r["total"] >= 170 and r["sites"] == {"backup": r["ok"]}'

lg v6pri "[$PRI6]:$SVC_PORT" --rate 50 --duration 2 --long-lived 2
check "v6 primary: all ok" "$(an v6pri)" 'r["failed"] == 0 and r["total"] >= 110 and r["sites"] == {"primary": r["ok"]}'
lg v6bak "[$BAK6]:$SVC_PORT" --rate 50 --duration 1 --long-lived 1
check "v6 backup: all ok" "$(an v6bak)" 'r["failed"] == 0 and r["total"] >= 50 and r["sites"] == {"backup": r["ok"]}'

# classifier --reset-fraction 1: every request is answered by an RST.
ip netns exec "${P}bak" $PY "$S/classifier.py" --site rst --listen "$BAK4:8081" --reset-fraction 1 \
	--pidfile "/tmp/$P-rst.pid" </dev/null >"/tmp/$P-rst.log" 2>&1 &
rst_pid=$!
for ((i = 0; i < 50; i++)); do [ -s "/tmp/$P-rst.pid" ] && break; sleep 0.1; done
lg rst "$BAK4:8081" --rate 50 --duration 1 --long-lived 1
check "classifier --reset-fraction 1: all reset, long conns reopened" "$(an rst)" 'r["total"] >= 50 and r["outcomes"]["reset"] == r["total"] and r["reopens"] >= 3'
kill -TERM "$rst_pid" 2>/dev/null || true
for ((i = 0; i < 30; i++)); do pid_alive "$rst_pid" || break; sleep 0.1; done
ok "classifier exits on SIGTERM" eval '! pid_alive "$rst_pid"'

# ---------------------------------------------------------------------------
echo "# fault: reset, then repair"
lg_bg reset "$PRI4:$SVC_PORT" --rate 50 --duration 5 --long-lived 2 --timeout 1
sleep 1
tf=$(fault reset)
ok "primary classifier is gone" eval '! site_running "$P" primary'
sleep 2
tr0=$(date +%s.%N) # the restarted primary answers before repair returns
tr=$(fault repair)
ok "repair restarted the primary" site_running "$P" primary
lg_wait
# A request sent just before the kill may reach the dead process: its connect is a ms.
check "reset: all ok before the fault" "$(an reset --to "$(add "$tf" -0.02)")" 'r["ok"] > 40 and r["failed"] == 0'
check "reset: all fail (refused) during the fault" "$(an reset --from "$(add "$tf" 0.05)" --to "$tr0")" 'r["total"] > 80 and r["ok"] == 0 and r["outcomes"]["refused"] >= r["by_kind"]["new"] > 80'
check "reset: all ok on primary after repair" "$(an reset --from "$(add "$tr" 0.05)")" 'r["ok"] > 40 and r["failed"] == 0 and list(r["sites"]) == ["primary"]'
check "reset: analyze numbers" "$(an reset --fault-at "$tf" --repair-at "$tr")" 'r["long_breaks"] >= 2 and r["reopens"] >= 2 and r["failed_after_fault"] > 80 and r["first_backup_after_fault"] is None and r["failover_s"] is None and 0 <= r["failback_s"] < 0.5'

echo "# fault: blackhole, then repair"
lg_bg blackhole "$PRI4:$SVC_PORT" --rate 50 --duration 5 --long-lived 2 --timeout 1
sleep 1
tf=$(fault blackhole)
ok "blackhole: nft table in ${P}pri" has_fsfault
ok "blackhole: edge untouched" eval '! ip netns exec "${P}edge" nft list tables 2>/dev/null | grep -q fsfault'
sleep 2
tr=$(fault repair)
ok "repair removed the nft table" eval '! has_fsfault'
lg_wait
check "blackhole: all time out during the fault" "$(an blackhole --from "$(add "$tf" 0.05)" --to "$(add "$tr" -1.05)")" 'r["total"] > 40 and r["outcomes"]["timeout"] == r["total"]'
check "blackhole: all ok after repair" "$(an blackhole --from "$(add "$tr" 0.05)")" 'r["ok"] > 40 and r["failed"] == 0'
check "blackhole: analyze numbers" "$(an blackhole --fault-at "$tf" --repair-at "$tr")" 'r["long_breaks"] >= 2 and r["failed_after_fault"] > 40 and r["failback_s"] is not None and r["failback_s"] < 0.5'

echo "# fault: brownout 100, then repair"
lg_bg brown100 "$PRI4:$SVC_PORT" --rate 50 --duration 4 --long-lived 2 --timeout 1
sleep 0.7
tf=$(fault brownout 100)
sleep 2
tr=$(fault repair)
lg_wait
check "brownout 100: all time out" "$(an brown100 --from "$(add "$tf" 0.05)" --to "$(add "$tr" -1.05)")" 'r["total"] > 40 and r["outcomes"]["timeout"] == r["total"]'
check "brownout 100: all ok after repair" "$(an brown100 --from "$(add "$tr" 0.05)")" 'r["ok"] > 40 and r["failed"] == 0'

echo "# fault: brownout 30, then repair"
lg_bg brown30 "$PRI4:$SVC_PORT" --rate 50 --duration 5 --long-lived 2 --timeout 1
sleep 0.5
tf=$(fault brownout 30)
ok "brownout 30: numgen rule" eval 'ip netns exec "${P}pri" nft list table inet fsfault | grep -q "numgen random mod 100 < 30"'
sleep 3
tr=$(fault repair)
lg_wait
check "brownout 30: some ok, some failed" "$(an brown30 --from "$(add "$tf" 0.05)" --to "$(add "$tr" -1.05)")" 'r["ok"] > 5 and r["failed"] > 5'
check "brownout 30: all ok after repair" "$(an brown30 --from "$(add "$tr" 0.05)")" 'r["ok"] > 20 and r["failed"] == 0'

echo "# fault: flap 0.5 s, then repair"
lg_bg flap "$PRI4:$SVC_PORT" --rate 50 --duration 4.5 --long-lived 2 --timeout 1
sleep 0.5
tf=$(fault flap 0.5)
# shellcheck disable=SC2034 # used in the eval below
flap_pid=$(cat "/tmp/$P-flap.pid")
ok "flap loop running in ${P}pri" eval '[ "$(ip netns identify "$flap_pid")" = "${P}pri" ]'
sleep 3
tr=$(fault repair)
ok "repair stopped the flap loop" eval '! pid_alive "$flap_pid" && [ ! -e "/tmp/$P-flap.pid" ]'
ok "repair removed the nft table" eval '! has_fsfault'
lg_wait
check "flap: both ok and timeouts while flapping" "$(an flap --from "$(add "$tf" 0.05)" --to "$(add "$tr" -1.05)")" 'r["ok"] > 10 and r["outcomes"]["timeout"] > 10 and r["failed"] == r["outcomes"]["timeout"]'
check "flap: all ok after repair" "$(an flap --from "$(add "$tr" 0.05)")" 'r["ok"] > 10 and r["failed"] == 0'

# ---------------------------------------------------------------------------
echo "# teardown"
topo_down "$P"
left=$(ip netns list | grep -c "^$P" || true)
ok "no namespace left" [ "$left" = 0 ]
procs=$(ps -eo stat=,args= | awk -v p="/tmp/$P-" -v f="fsflap-$P " '$1 !~ /^Z/ && (index($0, p) || index($0, f))' | grep -v awk || true)
ok "no process left" [ -z "$procs" ]
[ -z "$procs" ] || echo "$procs"
ok "topo_down is idempotent" topo_down "$P"
ok "topo_down of an unknown prefix" topo_down zzzz9
