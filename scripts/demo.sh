#!/bin/bash
# The failover story in network namespaces, unattended, under a minute: a client loads the
# classifier service through the edge node running failsteer; the primary site dies, the
# backup takes over; the primary comes back, traffic returns. One line per second, then a
# timeline. Usage: scripts/demo.sh BUILD_DIR
set -eu
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/scripts/topo.sh"
FS="$ROOT/$BUILD/failsteer"
[ -x "$FS" ] || FS="$BUILD/failsteer"
PY=/usr/bin/python3
[ "$(id -u)" = 0 ] || { echo "demo: run as root (it creates network namespaces and loads BPF)" >&2; exit 1; }
topo_claim_prefix demo || exit 1
PIN=/sys/fs/bpf/failsteer-$P
WORK=""
DURATION=32 FAULT_AT=8 REPAIR_AT=17
FS_PID=""

teardown() {
	local rc=$? i
	set +e # every step runs, whatever the one before did
	if [ -n "$FS_PID" ]; then
		kill "$FS_PID" 2>/dev/null
		for i in $(seq 50); do kill -0 "$FS_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$FS_PID" 2>/dev/null
		wait "$FS_PID" 2>/dev/null
	fi
	[ -e "/run/netns/${P}edge" ] && nsenter --net="/run/netns/${P}edge" "$FS" detach -p "$PIN" >/dev/null 2>&1
	if [ -d "$PIN" ]; then # detach failed: the pins go all the same
		rm -f "$PIN"/* 2>/dev/null
		rmdir "$PIN" 2>/dev/null
	fi
	topo_down "$P"
	topo_release_prefix
	rm -f /tmp/"$P"-*.log
	if [ $rc -ne 0 ]; then
		echo "demo failed (exit $rc); failsteer's log:"
		sed 's/^/  /' "$WORK/failsteer.log" 2>/dev/null | tail -n 20
	fi
	[ -z "$WORK" ] || rm -rf "$WORK"
	exit $rc
}
trap teardown EXIT
trap 'exit 130' INT TERM HUP
WORK=$(mktemp -d "/tmp/failsteer-demo-$P.XXXXXX")
topo_down "$P"

echo "== topology: client -> edge node (failsteer) -> primary site 198.18.2.10 / backup site 198.18.3.10"
topo_up "$P" off
start_site "$P" primary
start_site "$P" backup
cat >"$WORK/failsteer.conf" <<EOF
[global]
interfaces = ${P}e0 ${P}e1 ${P}e2
pin_path = $PIN
metrics_listen = off

[service classifier]
address = $PRI4:$SVC_PORT
backends = $PRI4:$SVC_PORT $BAK4:$SVC_PORT
connect_timeout_ms = 300
failback_hold_ms = 3000
probe_interval_ms = 200
EOF
echo "== config:"
sed 's/^/   /' "$WORK/failsteer.conf"
nsenter --net="/run/netns/${P}edge" "$FS" run -c "$WORK/failsteer.conf" >"$WORK/failsteer.log" 2>&1 &
FS_PID=$!
for _ in $(seq 50); do grep -q "attached to" "$WORK/failsteer.log" && break; sleep 0.1; done
grep -q "attached to" "$WORK/failsteer.log"

echo "== load: 50 new connections/s and 2 long-lived connections for ${DURATION}s; reset fault at ${FAULT_AT}s, repair at ${REPAIR_AT}s"
ip netns exec "${P}cli" $PY "$ROOT/scripts/loadgen.py" --target "$PRI4:$SVC_PORT" --rate 50 \
	--duration "$DURATION" --long-lived 2 --log "$WORK/load.log" >"$WORK/load.out" 2>&1 &
LOAD=$!
start=$(date +%s.%N)
fault="" repair="" note=""
printf '%5s  %11s  %10s  %7s  %-26s %s\n' second primary-ok backup-ok failed "active backend" "P(primary down)"
for t in $(seq 1 $((DURATION + 1))); do
	target=$($PY -c "print($start + $t)")
	sleep "$($PY -c "import time; print(max(0, $target - time.time()))")"
	if [ "$t" = "$FAULT_AT" ]; then
		fault=$(bash "$ROOT/scripts/fault.sh" "$P" reset); fault=${fault##* }
		note="   >>> ${t}s: primary site's service killed (its connections get resets)"
	fi
	if [ "$t" = "$REPAIR_AT" ]; then
		repair=$(bash "$ROOT/scripts/fault.sh" "$P" repair); repair=${repair##* }
		note="   >>> ${t}s: primary site's service restarted"
	fi
	# The second before last: its requests have all finished and reached the log.
	line=$(awk -F'\t' -v a="$($PY -c "print($start + $t - 2)")" -v b="$($PY -c "print($start + $t - 1)")" \
		'NR>1 && $3!="reopen" && $1>=a && $1<b { if ($5=="ok") ok[$6]++; else bad++ }
		 END { printf "%d %d %d", ok["primary"], ok["backup"], bad }' "$WORK/load.log")
	status=$(nsenter --net="/run/netns/${P}edge" "$FS" status --json -p "$PIN" classifier |
		$PY -c 'import json,sys; s=json.load(sys.stdin)["services"][0]; b=s["backends"]
print("%d %s %s %.6f" % (s["active"], ["primary","backup"][s["active"]], b[s["active"]]["address"], b[0]["p_down"]))')
	read -r pok bok bad <<<"$line"
	read -r _ aname aaddr pdown <<<"$status"
	[ "$t" -ge 2 ] || continue
	printf '%4ds  %11d  %10d  %7d  %-26s %s\n' "$((t - 1))" "$pok" "$bok" "$bad" "$aname $aaddr" "$pdown"
	[ -z "$note" ] || { echo "$note"; note=""; }
	kill -0 "$LOAD" 2>/dev/null || break
done
wait "$LOAD" || true

echo
echo "== failsteer's decisions:"
grep -E "failover:|failback:" "$WORK/failsteer.log" | sed 's/^/   /'
$PY -c "
import sys; sys.path.insert(0, '$ROOT/scripts')
from analyze import analyze
r = analyze('$WORK/load.log', fault_at=$fault, repair_at=$repair)
s = $start
def at(x): return '%6.2fs' % (x - s) if x else '   n/a'
print('== timeline (seconds since the load started)')
print('   fault at    ', at($fault))
print('   failover at ', at(r['first_backup_after_fault']), '  (first request served by the backup, %.0f ms after the fault)' % (1000 * (r['failover_s'] or 0)))
print('   repair at   ', at($repair))
print('   failback at ', at(r['first_primary_after_repair']), '  (first request served by the primary again, %.1f s after the repair)' % (r['failback_s'] or 0))
new_failed = r['failed'] - r['long_breaks']
print('   requests    ', r['total'], 'sent,', r['ok'], 'ok,', r['failed'], 'failed:',
      new_failed, 'on new connections,', r['long_breaks'], 'on the long-lived connections open on the primary when it died')
ok = r['first_backup_after_fault'] is not None and r['first_primary_after_repair'] is not None
sys.exit(0 if ok else 1)
"
echo "== done: failed over and back; tearing down"
