#!/bin/bash
# The failover story, made strict: each scenario drives the classifier service through the
# edge node with the load client and asserts numbers measured from the client's log.
# Usage: test_failover.sh BUILD [SCENARIO...]   (default: all)
set -eu
E2E_ARG_BUILD=${1:-build}
shift || true
source "$(dirname "$0")/lib.sh"
e2e_init fo

CONNECT_TIMEOUT_MS=300
FAILBACK_HOLD_MS=2000
# The detector's story: zero-error retries (test_zero_error.sh) would answer the first
# requests after a fault from the backup on their own and hide how fast the detector is.
NO_RETRY="zero_error_retry = off"
# 24 idle services beside the one under test (a virtual address nobody uses): the daemon
# then reads only the counters of the backends the data path flagged, one by one, and the
# scenarios' timings hold only if that finds every fault in time.
IDLE_SERVICES=()
for i in $(seq 24); do
	IDLE_SERVICES+=("[service idle$i]" "address = 198.18.9.9:$((20000 + i))"
		"backends = $PRI4:$((20000 + i)) $BAK4:$((20000 + i))")
done
URL4="http://$PRI4:$SVC_PORT/classify"

# Fresh topology, sites and daemon for one scenario.
setup() { # OFFLOAD [primary classifier args...]
	local offload=$1
	shift
	e2e_stop_daemon
	if [ -d "$PIN" ]; then fsctl detach >/dev/null 2>&1 || true; fi
	topo_down "$P"
	topo_up "$P" "$offload"
	start_site "$P" primary "$@"
	start_site "$P" backup
	e2e_config "$NO_RETRY" "${IDLE_SERVICES[@]}"
	DLOG_MARK=$( (wc -l <"$DLOG") 2>/dev/null || echo 0)
	e2e_start_daemon
}

# The daemon's log since the scenario's setup.
scenario_log() { tail -n "+$((${DLOG_MARK:-0} + 1))" "$DLOG"; }
log_events() { scenario_log | grep -c "service classifier: $1:" || true; }

# 1 and 3: reset fault at 100 new connections/s, repair, failback after the hold with a
# long-lived connection opened on the backup kept through it.
scenario_reset_repair() { # OFFLOAD [LABEL TARGET NS]
	local offload=$1 label=${2:-v4 gateway, offload off} target=${3:-$PRI4:$SVC_PORT} ns=${4:-${P}cli}
	echo "-- reset fault and repair ($label)"
	setup "$offload"
	load_start "$ns" reset "$target" 100 13
	sleep 2
	local fault repair
	fault=$(bash "$E2E_ROOT/scripts/fault.sh" "$P" reset)
	fault=${fault##* }
	sleep 3
	# Long-lived connections opened now land on the backup.
	ip netns exec "$ns" $PY "$E2E_ROOT/scripts/loadgen.py" --target "$target" --rate 1 --duration 7 \
		--long-lived 2 --long-interval-ms 100 --log "$WORK/long.log" >"$WORK/long.out" 2>&1 &
	local long_pid=$!
	sleep 1
	repair=$(bash "$E2E_ROOT/scripts/fault.sh" "$P" repair)
	repair=${repair##* }
	load_wait
	wait "$long_pid" || true
	local L="$WORK/reset.log" fo failed window fb
	fo=$(af failover_s "$L" --fault-at "$fault")
	failed=$(af failed_after_fault "$L" --fault-at "$fault" --repair-at "$repair")
	window=$(af requests_in_window "$L" --fault-at "$fault")
	fb=$(af failback_s "$L" --fault-at "$fault" --repair-at "$repair")
	report "failover ${fo}s, failed $failed, sent in the window $window, failback ${fb}s after repair (hold ${FAILBACK_HOLD_MS}ms)"
	e2e_check "[$label] backup serves within 500 ms of the reset fault" le "$fo" 0.5
	e2e_check "[$label] the detector failed over (once)" eq "$(log_events failover)" 1
	e2e_check "[$label] failed requests <= those sent before the switch" le "$failed" "$window"
	if [ "$label" = "v4 gateway, offload off" ]; then
		local lb lt
		e2e_check "[$label] failback not before the hold" ge "$fb" "$(echo "$FAILBACK_HOLD_MS / 1000" | bc -l)"
		e2e_check "[$label] failback within hold + 5 s" le "$fb" "$(echo "$FAILBACK_HOLD_MS / 1000 + 5" | bc -l)"
		lb=$(awk -F'\t' '$3=="long" && $5!="ok"' "$WORK/long.log" | wc -l)
		lt=$(awk -F'\t' '$3=="long" && $5=="ok" && $6=="backup"' "$WORK/long.log" | wc -l)
		# Only meaningful if the long-lived connections were still in use after failback.
		local after_fb
		after_fb=$(awk -F'\t' -v t="$(echo "$repair + $fb" | bc -l)" '$3=="long" && $5=="ok" && $1 > t' "$WORK/long.log" | wc -l)
		report "long-lived requests on the backup through failback: $lt ok, $lb failed, $after_fb ok after the failback"
		e2e_check "[$label] the long-lived connections were still in use after failback" ge "$after_fb" 10
		e2e_check "[$label] long-lived connection on the backup kept working through failback" \
			eq "$lb:$(test "$lt" -ge 80 && echo enough)" "0:enough"
	fi
}

# 2: blackhole: backup serving within connect_timeout + 500 ms.
scenario_blackhole() {
	echo "-- blackhole fault"
	setup off
	load_start "${P}cli" bh "$PRI4:$SVC_PORT" 100 7
	sleep 2
	local fault fo failed
	fault=$(bash "$E2E_ROOT/scripts/fault.sh" "$P" blackhole)
	fault=${fault##* }
	load_wait
	fo=$(af failover_s "$WORK/bh.log" --fault-at "$fault")
	failed=$(af failed_after_fault "$WORK/bh.log" --fault-at "$fault")
	report "failover ${fo}s (limit $(echo "$CONNECT_TIMEOUT_MS / 1000 + 0.5" | bc -l)s), failed $failed, max delay $(af max_latency_ms_after_fault "$WORK/bh.log" --fault-at "$fault") ms"
	e2e_check "[blackhole] backup serving within connect_timeout + 500 ms" le "$fo" "$(echo "$CONNECT_TIMEOUT_MS / 1000 + 0.5" | bc -l)"
	e2e_check "[blackhole] one failover" eq "$(log_events failover)" 1
}

# 4: brownout: passive detection sees a 30% packet loss even though probes may pass.
scenario_brownout() {
	echo "-- brownout 30%"
	setup off
	load_start "${P}cli" bo "$PRI4:$SVC_PORT" 100 12
	sleep 2
	local fault fo
	fault=$(bash "$E2E_ROOT/scripts/fault.sh" "$P" brownout 30)
	fault=${fault##* }
	load_wait
	fo=$(af failover_s "$WORK/bo.log" --fault-at "$fault")
	report "brownout failover after ${fo}s"
	e2e_check "[brownout] failover happens" ge "$(log_events failover)" 1
	e2e_check "[brownout] backup serves within 8 s" le "$fo" 8
}

# 5: a primary flapping every 3 s for 20 s: few switches, each failback hold longer.
scenario_flap() {
	echo "-- flapping primary"
	FAILBACK_HOLD_MS=1000 setup off
	load_start "${P}cli" flap "$PRI4:$SVC_PORT" 100 24
	sleep 2
	FLAP_MAX_S=20 bash "$E2E_ROOT/scripts/fault.sh" "$P" flap 3 >/dev/null
	load_wait
	local switches holds
	switches=$(($(log_events failover) + $(log_events failback)))
	holds=$(scenario_log | grep -o "failover: backend 0 -> 1 (.*hold=[0-9.]*s" | grep -o "hold=[0-9.]*" | cut -d= -f2 | tr '\n' ' ')
	report "switches $switches, failback hold at each failover: $holds"
	e2e_check "[flap] at most 5 switches in 20 s of flapping (without back-off: 2 per 6 s period, about 7)" le "$switches" 5
	e2e_check "[flap] the hold grows after each failback that failed again (at least two failovers)" \
		$PY -c "import sys; h=[float(x) for x in sys.argv[1:]]; sys.exit(0 if len(h)>=2 and all(b>a for a,b in zip(h,h[1:])) else 1)" $holds
}

# 6: 1% of requests reset by a healthy primary for 20 s: no failover. Both kinds: 1% of
# accepted requests reset by the server, and 1% of connection attempts refused (a reset
# answering the SYN, which the detector weighs fully).
scenario_background_resets() {
	echo "-- 1% resets, no fault"
	setup off --reset-fraction 0.01
	ip netns exec "${P}pri" nft -f - <<NFT
table inet fsbg {
	chain in {
		type filter hook input priority 0; policy accept;
		tcp dport $SVC_PORT tcp flags & (syn | ack) == syn numgen random mod 100 == 0 reject with tcp reset;
	}
}
NFT
	load_start "${P}cli" bg "$PRI4:$SVC_PORT" 100 20
	load_wait
	local resets refused
	resets=$(awk -F'\t' 'NR>1 && $5=="reset"' "$WORK/bg.log" | wc -l)
	refused=$(awk -F'\t' 'NR>1 && $5=="refused"' "$WORK/bg.log" | wc -l)
	report "requests reset by the primary: $resets, connections refused: $refused; failovers $(log_events failover)"
	e2e_check "[1% resets] the primary did reset some requests and refuse some connections" \
		eq "$(test "$resets" -ge 5 && test "$refused" -ge 5 && echo yes)" yes
	e2e_check "[1% resets] zero failovers" eq "$(log_events failover)" 0
}

# 7: no traffic at all for 20 s: no failover (and no probe traffic).
scenario_silence() {
	echo "-- no traffic"
	setup off
	# Every SYN from the edge, whatever the port: the idle services' probes too.
	topo_probe_count_start "$P" any
	sleep 20
	local attempts probes
	attempts=$(fsctl status --json | $PY -c 'import json,sys; print(sum(b["totals"]["attempts"] for s in json.load(sys.stdin)["services"] for b in s["backends"]))')
	probes="$(topo_probe_count_read "$P" pri)+$(topo_probe_count_read "$P" bak)"
	topo_probe_count_stop "$P"
	report "20 s without traffic: $attempts connections steered, $probes (primary+backup) SYNs from the edge at the sites"
	e2e_check "[silence] zero failovers" eq "$(log_events failover)" 0
	e2e_check "[silence] nothing steered, no probe SYN reached either site" eq "$attempts:$probes" "0:0+0"
}

# 8: kill -9 during load and restart: no request fails because of it; with the daemon gone
# and the primary broken, flows already steered keep going.
scenario_kill9() {
	echo "-- kill -9 during load"
	setup off
	load_start "${P}cli" k9 "$PRI4:$SVC_PORT" 100 12 --long-lived 2 --long-interval-ms 100
	sleep 2
	e2e_stop_daemon KILL
	sleep 2
	e2e_start_daemon
	sleep 2
	local failed_restart
	failed_restart=$(awk -F'\t' 'NR>1 && $3!="reopen" && $5!="ok"' "$WORK/k9.log" | wc -l)
	report "failed requests across kill -9 and restart: $failed_restart"
	e2e_check "[kill -9] no failed request across kill -9 and restart" eq "$failed_restart" 0
	e2e_check "[kill -9] restart adopted the pinned state" bash -c "tail -n +$((DLOG_MARK + 1)) '$DLOG' | grep -q 'adopted pinned state'"
	# Fail over, then lose the daemon and break the primary for good: backup flows go on.
	local fault
	fault=$(bash "$E2E_ROOT/scripts/fault.sh" "$P" reset)
	fault=${fault##* }
	sleep 1.5
	e2e_check "[kill -9] failed over before the kill" eq "$(active_backend)" 1
	# A restart now (the detector's own failover, not a forced one) keeps the backup and
	# decides nothing: it adopts the active backend and the models.
	e2e_stop_daemon KILL
	local mark
	mark=$(wc -l <"$DLOG")
	e2e_start_daemon
	sleep 1.5
	e2e_check "[kill -9] restarted on the backup: still active, no new decision" \
		eq "$(active_backend):$(tail -n "+$((mark + 1))" "$DLOG" | grep -c "service classifier: fail\(over\|back\):")" "1:0"
	e2e_stop_daemon KILL
	bash "$E2E_ROOT/scripts/fault.sh" "$P" blackhole >/dev/null
	load_wait
	local after
	after=$(awk -F'\t' -v t="$fault" 'NR>1 && $1 > t + 1.5 && $3!="reopen" && $5!="ok"' "$WORK/k9.log" | wc -l)
	report "failed requests after the daemon was killed on the backup: $after"
	e2e_check "[kill -9] daemon gone, primary broken: steered flows keep going" eq "$after" 0
}

# 10: a connection opened before failsteer started keeps working after it starts.
scenario_preexisting() {
	echo "-- connection older than failsteer"
	e2e_stop_daemon
	if [ -d "$PIN" ]; then fsctl detach >/dev/null 2>&1 || true; fi
	topo_down "$P"
	topo_up "$P" off
	start_site "$P" primary
	start_site "$P" backup
	e2e_config "$NO_RETRY"
	DLOG_MARK=$( (wc -l <"$DLOG") 2>/dev/null || echo 0)
	load_start "${P}cli" pre "$PRI4:$SVC_PORT" 1 6 --long-lived 2 --long-interval-ms 100
	sleep 2
	e2e_start_daemon
	load_wait
	local bad ok_after
	bad=$(awk -F'\t' '$3=="long" && $5!="ok"' "$WORK/pre.log" | wc -l)
	ok_after=$(awk -F'\t' '$3=="long" && $5=="ok"' "$WORK/pre.log" | wc -l)
	report "long-lived requests ok $ok_after, failed $bad; flow misses counted: $(fsctl status --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["flow_misses"])')"
	e2e_check "[pre-existing] connection opened before failsteer kept working" eq "$bad:$(test "$ok_after" -ge 80 && echo enough)" "0:enough"
}

scenarios=${*:-"reset blackhole brownout flap background silence kill9 hostmode ipv6 offload preexisting"}
for s in $scenarios; do
	case $s in
	reset) scenario_reset_repair off ;;
	offload) scenario_reset_repair on "v4 gateway, offload on" ;;
	hostmode) scenario_reset_repair off "v4 host mode" "$PRI4:$SVC_PORT" "${P}edge" ;;
	ipv6)
		SVC_ADDR="[$PRI6]:$SVC_PORT" SVC_BACKENDS="[$PRI6]:$SVC_PORT [$BAK6]:$SVC_PORT" \
			scenario_reset_repair off "v6 gateway" "[$PRI6]:$SVC_PORT" ;;
	blackhole) scenario_blackhole ;;
	brownout) scenario_brownout ;;
	flap) scenario_flap ;;
	background) scenario_background_resets ;;
	silence) scenario_silence ;;
	kill9) scenario_kill9 ;;
	preexisting) scenario_preexisting ;;
	*) echo "unknown scenario $s" >&2; exit 2 ;;
	esac
done
e2e_finish
