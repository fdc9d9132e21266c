#!/bin/bash
# Zero-error failover: at 200 new connections/s with the fault time randomised, a primary
# that starts resetting or goes dark costs no failed request; both sites down fails clients
# fast. Gateway and host mode, IPv4 and IPv6.
# Usage: test_zero_error.sh BUILD [SCENARIO...]
set -eu
E2E_ARG_BUILD=${1:-build}
shift || true
source "$(dirname "$0")/lib.sh"
e2e_init ze

CONNECT_TIMEOUT_MS=300
TICK_MS=100
RATE=200

setup() { # [offload]
	e2e_stop_daemon
	if [ -d "$PIN" ]; then fsctl detach >/dev/null 2>&1 || true; fi
	topo_down "$P"
	topo_up "$P" "${1:-off}"
	start_site "$P" primary
	start_site "$P" backup
	e2e_config
	e2e_start_daemon
}

random_sleep() { sleep "$($PY -c 'import random; print(2 + random.random() * 2)')"; }

# Requests sent before the fault show the path's own latency (median: the first requests
# of a fresh topology may wait for neighbour discovery); "delay" is on top of it.
base_latency() { # LOG FAULT
	$PY - "$1" "$2" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]).readlines()[1:]]
lat = sorted(float(r[6]) for r in rows if len(r) > 6 and r[4] == "ok" and float(r[0]) < float(sys.argv[2]))
print(lat[len(lat) // 2] if lat else 0)
PY
}

# A fault at a random moment under load; asserts no failure and bounds the added delay.
scenario() { # LABEL FAULT TARGET NS DELAY_LIMIT_MS [offload]
	local label=$1 fault_kind=$2 target=$3 ns=$4 limit=$5 offload=${6:-off}
	echo "-- $label"
	setup "$offload"
	load_start "$ns" "$fault_kind" "$target" "$RATE" 7
	random_sleep
	local fault L failed failed_conn maxlat base fo retried
	fault=$(bash "$E2E_ROOT/scripts/fault.sh" "$P" "$fault_kind")
	fault=${fault##* }
	load_wait
	L="$WORK/$fault_kind.log"
	failed=$(af failed "$L")
	failed_conn=$(af failed_connect "$L")
	maxlat=$(af max_latency_ms_after_fault "$L" --fault-at "$fault")
	base=$(base_latency "$L" "$fault")
	fo=$(af failover_s "$L" --fault-at "$fault")
	retried=$(fsctl status --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["services"][0]["backends"][0]["totals"]["retried"])')
	report "requests $(af total "$L"), failed $failed (never connected: $failed_conn; the others were in flight on a connection the primary had accepted), largest latency after the fault ${maxlat} ms (median before it ${base} ms), backup serving after ${fo}s, connections retried $retried"
	e2e_check "[$label] no connection attempt failed" eq "$failed_conn" 0
	# A connection the primary's kernel answered (in service, or waiting in the accept
	# queue of a process being killed) is the primary's: how many there are when it dies is
	# up to it, not to steering.
	e2e_check "[$label] those lost in flight on connections the primary had accepted are few (<= 5)" le "$failed" 5
	e2e_check "[$label] no request delayed by more than $limit ms" le "$maxlat" "$($PY -c "print($base + $limit)")"
	e2e_check "[$label] the retries really happened" ge "$retried" 1
}

# Both sites dark: the client hears a reset within connect_timeout x backends (+ slack).
scenario_all_down() {
	echo "-- both sites blackholed"
	setup off
	ip netns exec "${P}bak" nft -f - <<'NFT'
table inet fsfault {
	chain in {
		type filter hook prerouting priority -300;
		iifname != "lo" drop;
	}
}
NFT
	bash "$E2E_ROOT/scripts/fault.sh" "$P" blackhole >/dev/null
	local said
	said=$(grep -c "service classifier: all-down" "$DLOG" || true)
	load_start "${P}cli" down "$PRI4:$SVC_PORT" 20 3 --timeout 5
	# A reload in the middle of the outage carries it on: no second warning, no move.
	sleep 2
	kill -HUP "$E2E_DAEMON_PID"
	load_wait
	said=$(($(grep -c "service classifier: all-down" "$DLOG" || true) - said))
	e2e_check "[all down] this node's network suspected, said once, a reload notwithstanding; no move" \
		eq "$said:$(grep -c 'reloaded' "$DLOG"):$(active_backend)" "1:1:0"
	local L="$WORK/down.log" worst ok
	ok=$(af ok "$L")
	worst=$(awk -F'\t' 'NR>1 && $3=="new" {print $2-$1}' "$L" | sort -g | tail -1)
	report "requests $(af total "$L"), ok $ok, outcomes $(af outcomes "$L"), slowest failure ${worst}s"
	e2e_check "[all down] every request fails" eq "$ok" 0
	e2e_check "[all down] clients fail within connect_timeout x backends + 2 ticks + 0.3 s" \
		le "$worst" "$($PY -c "print(2 * $CONNECT_TIMEOUT_MS / 1000 + 2 * $TICK_MS / 1000 + 0.3)")"
	e2e_check "[all down] they fail with a reset (refused), not a timeout" \
		eq "$(awk -F'\t' 'NR>1 && $3=="new" && $5!="refused"' "$L" | wc -l)" 0
}

scenarios=${*:-"reset blackhole alldown hostmode ipv6 offload reject hostmode-bh ipv6-bh"}
for s in $scenarios; do
	case $s in
	reset) scenario "reset, v4 gateway" reset "$PRI4:$SVC_PORT" "${P}cli" 20 ;;
	blackhole) scenario "blackhole, v4 gateway" blackhole "$PRI4:$SVC_PORT" "${P}cli" \
		$((CONNECT_TIMEOUT_MS + 2 * TICK_MS)) ;;
	hostmode) scenario "reset, v4 host mode" reset "$PRI4:$SVC_PORT" "${P}edge" 20 ;;
	ipv6)
		SVC_ADDR="[$PRI6]:$SVC_PORT" SVC_BACKENDS="[$PRI6]:$SVC_PORT [$BAK6]:$SVC_PORT" \
			scenario "reset, v6 gateway" reset "[$PRI6]:$SVC_PORT" "${P}cli" 20 ;;
	# The re-sent SYN's checksums under CHECKSUM_PARTIAL skbs (edge devices without tx
	# checksumming, peers verifying): a wrong one fails the connection.
	offload) scenario "reset, v4 gateway, offloads mixed" reset "$PRI4:$SVC_PORT" "${P}cli" 20 mixed ;;
	# Resets made by nftables' reject come CHECKSUM_PARTIAL: the SYN re-made from one must
	# stay so (pseudo-header sum, completed by the edge device's checksum_help).
	reject) scenario "reject (nftables resets), v4 gateway, offloads mixed" reject "$PRI4:$SVC_PORT" \
		"${P}cli" 20 mixed ;;
	hostmode-bh) scenario "blackhole, v4 host mode" blackhole "$PRI4:$SVC_PORT" "${P}edge" \
		$((CONNECT_TIMEOUT_MS + 2 * TICK_MS)) ;;
	ipv6-bh)
		SVC_ADDR="[$PRI6]:$SVC_PORT" SVC_BACKENDS="[$PRI6]:$SVC_PORT [$BAK6]:$SVC_PORT" \
			scenario "blackhole, v6 gateway" blackhole "[$PRI6]:$SVC_PORT" "${P}cli" \
			$((CONNECT_TIMEOUT_MS + 2 * TICK_MS)) ;;
	alldown) scenario_all_down ;;
	*) echo "unknown scenario $s" >&2; exit 2 ;;
	esac
done
[ -n "${KEEP_LOGS:-}" ] && { e2e_stop_daemon; cp -r "$WORK" "$KEEP_LOGS"; } || true
e2e_finish
