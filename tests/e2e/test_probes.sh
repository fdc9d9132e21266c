#!/bin/bash
# Active probes in host mode keep clear of the source ports of steered connections. A local
# connection to a virtual address is steered to the primary; the kernel knows it as one to
# the virtual address, so for a probe to the primary itself it would pick the same source
# port (the 4-tuple it knows differs), and the primary's answer would be taken for the
# steered connection's: the probe fails, the model learns a healthy primary is down (and the
# steered connection gets a stray packet). Same for a connection that is closed in the
# kernel but whose entries still linger in the flow table (ended by a reset). The edge's
# ephemeral port range is cut to two ports, so that the kernel's choice is certain to
# collide (connect() takes even ports first) and a probe has exactly one port that works.
# The old code (the kernel's choice) fails here: P(down) of the healthy primary reached 1.
# Ports the operator reserved (ip_local_reserved_ports) are left alone as connect() does.
# Last, a backup found down stays probed after the service is healthy again, until trusted.
set -eu
E2E_ARG_BUILD=${1:-build}
source "$(dirname "$0")/lib.sh"
e2e_init pr

VIP4=198.18.9.9
VIP6=2001:db8:9::9

# Samples the primary's probe results of both services while the services sit forced on
# the backup (so the daemon probes the primary every probe_interval_ms): prints the largest
# failed-probe rate and P(down) seen, and the smaller successful-probe rate at the end.
watch_probes() { # SECONDS
	local end=$(($(date +%s) + $1)) worst_fail=0 last_ok=0 worst_down=0 json
	while [ "$(date +%s)" -lt "$end" ]; do
		sleep 0.5
		json=$(fsctl status --json) || continue
		read -r worst_fail last_ok worst_down < <($PY -c '
import json, sys
wf, wd = float(sys.argv[1]), float(sys.argv[2])
ok = []
for s in json.loads(sys.stdin.read())["services"]:
    if s["name"] in ("vip4", "vip6"):
        b = s["backends"][0]
        wf = max(wf, b["rates"]["probes_failed"])
        ok.append(b["rates"]["probes_ok"])
        wd = max(wd, b["p_down"])
print(wf, min(ok), wd)' "$worst_fail" "$worst_down" <<<"$json")
	done
	echo "$worst_fail $last_ok $worst_down"
}

# The source ports of the edge's TCP connections to ADDR:PORT (as the kernel knows them).
local_ports_to() { edge ss -Htn state established dst "$1" | awk '{ n = split($3, a, ":"); print a[n] }' | sort -u | tr '\n' ' '; }

topo_up "$P" off
start_site "$P" primary
start_site "$P" backup
edge sysctl -qw net.ipv4.ip_local_port_range="40000 40001"
# Local processes reach the virtual addresses through the primary's link.
ip -n "${P}edge" route add "$VIP4/32" via "$PRI4"
ip -n "${P}edge" -6 route add "$VIP6/128" via "$PRI6"
e2e_config \
	"[service vip4]" "address = $VIP4:80" "backends = $PRI4:$SVC_PORT $BAK4:$SVC_PORT" \
	"probe_interval_ms = 250" \
	"[service vip6]" "address = [$VIP6]:80" "backends = [$PRI6]:$SVC_PORT [$BAK6]:$SVC_PORT" \
	"probe_interval_ms = 250"
e2e_start_daemon

# -- live steered connections (one per family) on the primary, services forced to the backup
ip netns exec "${P}edge" $PY "$E2E_ROOT/scripts/loadgen.py" --target "$VIP4:80" --rate 0 \
	--duration 6 --long-lived 1 --long-interval-ms 100 --log "$WORK/long4.log" >"$WORK/long4.out" 2>&1 &
L4=$!
ip netns exec "${P}edge" $PY "$E2E_ROOT/scripts/loadgen.py" --target "[$VIP6]:80" --rate 0 \
	--duration 6 --long-lived 1 --long-interval-ms 100 --log "$WORK/long6.log" >"$WORK/long6.out" 2>&1 &
L6=$!
sleep 1
report "local ports of the steered connections: $(local_ports_to "$VIP4:80")(v4) $(local_ports_to "[$VIP6]:80")(v6)"
fsctl failover vip4 1 >/dev/null
fsctl failover vip6 1 >/dev/null
read -r fail ok down < <(watch_probes 4)
report "primary, while probed next to live steered connections: failed probes/s at most $fail, ok probes/s at the end $ok, P(down) at most $down"
e2e_check "no probe of the primary failed (none took a live steered connection's port)" le "$fail" 0
e2e_check "probes of the primary succeeded" ge "$ok" 1
e2e_check "the primary's P(down) stayed low" le "$down" 0.1
wait "$L4" "$L6" 2>/dev/null || true
for f in long4 long6; do
	total=$(awk -F'\t' 'NR>1 && $3=="long"' "$WORK/$f.log" | wc -l)
	good=$(awk -F'\t' 'NR>1 && $3=="long" && $5=="ok" && $6=="primary"' "$WORK/$f.log" | wc -l)
	report "$f: $total long-lived requests, $good answered by the primary"
	e2e_check "$f: the steered connection kept working on the primary" eq "$good" "$total"
	e2e_check "$f: the steered connection made >= 30 requests" ge "$total" 30
done

# -- connections ended by a reset: gone from the kernel, their entries linger (30 s). Made
# on the primary, then the services go back to the backup so that the primary is probed.
# Two other ports (the long-lived connections left theirs in TIME_WAIT); the daemon reads
# the range again within a second.
fsctl failback vip4 >/dev/null
fsctl failback vip6 >/dev/null
edge sysctl -qw net.ipv4.ip_local_port_range="40002 40003"
sleep 2.5 # the daemon reads it again within a second; margin for a busy machine
for target in "$VIP4" "$VIP6"; do
	ip netns exec "${P}edge" $PY - "$target" <<'EOF'
import socket, struct, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.settimeout(3)
s.connect((sys.argv[1], 80))
s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
s.recv(4096)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()  # a reset
EOF
done
fsctl failover vip4 1 >/dev/null
fsctl failover vip6 1 >/dev/null
lingering=$(bpftool map dump pinned "$PIN/flows" 2>/dev/null | grep -c '"dir"' || true)
report "flow entries lingering after the resets: $lingering"
e2e_check "the reset connections' entries linger" ge "$lingering" 4
read -r fail ok down < <(watch_probes 3)
report "primary, probed next to lingering entries: failed probes/s at most $fail, ok probes/s at the end $ok, P(down) at most $down"
e2e_check "no probe of the primary failed (none took a lingering entry's port)" le "$fail" 0
e2e_check "probes of the primary succeeded" ge "$ok" 1
e2e_check "the primary's P(down) stayed low" le "$down" 0.1

# -- reserved ports (ip_local_reserved_ports) are not taken either: of the two ports of the
# range only the unreserved one may carry a probe's SYN to the primary.
# Reserved first: a daemon reading between the two writes must not see the new range alone.
edge sysctl -qw net.ipv4.ip_local_reserved_ports=40011
edge sysctl -qw net.ipv4.ip_local_port_range="40010 40011"
sleep 2.5 # the daemon reads both again within a second (margin for a busy machine)
ip netns exec "${P}pri" nft -f - <<NFT
table inet fsports {
	chain pre { type filter hook prerouting priority -200; policy accept;
		tcp sport 40010 tcp flags & (syn | ack) == syn counter
		tcp sport 40011 tcp flags & (syn | ack) == syn counter; }
}
NFT
sleep 3
read -r free reserved < <(ip netns exec "${P}pri" nft list table inet fsports |
	awk '/counter packets/ { for (i = 1; i < NF; i++) if ($i == "packets") printf "%s ", $(i + 1) } END { print "" }')
report "probe SYNs at the primary from port 40010: $free, from the reserved 40011: $reserved"
e2e_check "probes came from the unreserved port" ge "$free" 2
e2e_check "no probe came from the reserved port" eq "$reserved" 0

# -- a backup believed down stays probed once all is well again, until believed up: vip4 is
# forced onto its backup, which is down (the data path retries its connections at the
# primary), then back on its healthy primary; the backup comes back meanwhile.
ip netns exec "${P}pri" nft delete table inet fsports
edge sysctl -qw net.ipv4.ip_local_reserved_ports=
edge sysctl -qw net.ipv4.ip_local_port_range="32768 60999"
backup_p_down() { fsctl status --json vip4 | $PY -c 'import json,sys; print(json.load(sys.stdin)["services"][0]["backends"][1]["p_down"])'; }
backup_believed() { # up (trusted: P(down) <= 0.01) | down
	local p
	p=$(backup_p_down) || return 1
	if [ "$1" = up ]; then le "$p" 0.01; else ge "$p" 0.5; fi
}
stop_site "$P" backup
ip netns exec "${P}edge" $PY "$E2E_ROOT/scripts/loadgen.py" --target "$VIP4:80" --rate 20 \
	--duration 3 --log "$WORK/down.log" >"$WORK/down.out" 2>&1
e2e_check "[recheck] connections to the dead backup taught its model it is down" backup_believed down
fsctl failback vip4 >/dev/null
fsctl auto vip4 >/dev/null
# Still down: each round (a burst of 8, every 4 probe intervals = 1 s) that nothing answers
# doubles the spacing, up to 32 intervals (8 s): rounds at about 0, 1, 3, 7, 15 s. Over
# 4-10 s that is one round, where a fixed spacing would send six.
sleep 4
topo_probe_count_start "$P"
sleep 6
probes_dead=$(topo_probe_count_read "$P" bak)
topo_probe_count_stop "$P"
report "probe SYNs at the dead backup 4-10 s after the service was healthy again: $probes_dead"
e2e_check "[recheck] a backup still down is probed, less and less often (1-24 SYNs in 6 s)" \
	eval '[ "$probes_dead" -ge 1 ] && [ "$probes_dead" -le 24 ]'
start_site "$P" backup
t0=$(now)
e2e_check "[recheck] the backup, back, is trusted again with the primary healthy (within 30 s)" \
	wait_until 30 backup_believed up
report "the backup trusted again $(printf %.1f "$(echo "$(now) - $t0" | bc -l)") s after it came back (probe_interval_ms 250)"
e2e_check "[recheck] ... and vip4 stayed on its primary" eq "$(fsctl status --json vip4 | jq .services[0].active)" 0
# Probe SYNs from the edge's address on the backup's link, counted at the backup.
topo_probe_count_start "$P"
sleep 3
probes_after=$(topo_probe_count_read "$P" bak)
topo_probe_count_stop "$P"
e2e_check "[recheck] once trusted it is no longer probed (no SYN at the backup in 3 s)" eq "$probes_after" 0

e2e_finish
