#!/bin/bash
# failsteer benchmarks (`make bench`): failsteer against no steering (direct) and against
# HAProxy (defaults and tuned), on one namespace topology, candidates alternating, several
# repetitions; prints a table and writes the same into docs/benchmarks.md.
#
# Usage: scripts/bench.sh BUILD_DIR
#   BENCH_REPS=4      repetitions of figure 1 (throughput, latency)
#   BENCH_FO_REPS=3   repetitions of figures 2/3 (failover, failback); HAProxy defaults, whose
#                     figures are set by its 2 s check interval, runs at most 2 of them
#   BENCH_DOC=FILE    where the report goes (default docs/benchmarks.md)
#   BENCH_KEEP=DIR    copy the raw results and logs there
#
# Figures: 1 throughput/latency, 2 failover, 3 failback, 4 per-packet cost (bench_bpf),
# 5 daemon cost. Never fails on a slow figure; exits non-zero with "bench: FAILED: ..." if a
# candidate could not run. Everything runs in namespaces named ${P}{cli,edge,pri,bak}, with
# addresses from 198.18.0.0/15; teardown always runs.
set -eu -o pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/topo.sh
source "$ROOT/scripts/topo.sh"
PY=/usr/bin/python3
case $BUILD in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
FS="$BUILD/failsteer"
BB="$BUILD/bench"
REPS=${BENCH_REPS:-4}
FO_REPS=${BENCH_FO_REPS:-3}
DOC=${BENCH_DOC:-$ROOT/docs/benchmarks.md}
BUDGET_S=570 # stop adding repetitions beyond this (the whole run must stay under 10 minutes)

topo_claim_prefix bn || exit 1
PIN=/sys/fs/bpf/fs-bench-$P
WORK=$(mktemp -d "/tmp/fs-bench-$P.XXXXXX")
RES=$WORK/results.tsv # figure  candidate  key  rep  value
FS_PID="" HA_PID="" LOAD_PID="" SRV_PIDS=""
STARTED=$(date +%s)

log() { printf '[%3ds] %s\n' $(($(date +%s) - STARTED)) "$*" | tee -a "$WORK/console.log"; }
die() {
	echo "bench: FAILED: $*" >&2
	exit 1
}
elapsed() { echo $(($(date +%s) - STARTED)); }
put() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RES"; } # FIGURE CAND KEY REP VALUE
jget() { $PY -c 'import json,sys; v=json.loads(sys.argv[1]).get(sys.argv[2]); print("null" if v is None else v)' "$1" "$2"; }

[ "$(id -u)" = 0 ] || die "run as root (network namespaces, BPF)"
for f in "$FS" "$BB/bench_bpf" "$BB/bench_server" "$BB/bench_client"; do
	[ -x "$f" ] || die "$f missing (run 'make bench')"
done
command -v haproxy >/dev/null || die "haproxy missing (scripts/install-deps.sh bench installs it)"

# Teardown: always, on success, failure or signal. Leaves no namespace, pin or process.
teardown() {
	local rc=$?
	trap - EXIT INT TERM
	[ -n "$LOAD_PID" ] && kill -KILL "$LOAD_PID" 2>/dev/null
	stop_failsteer
	stop_haproxy
	topo_down "$P"
	[ -d "$PIN" ] && { rm -f "$PIN"/* 2>/dev/null; rmdir "$PIN" 2>/dev/null; }
	topo_release_prefix
	rm -f /tmp/"$P"-*.pid /tmp/"$P"-*.log /tmp/"$P"-*.args 2>/dev/null
	if [ -n "${BENCH_KEEP:-}" ]; then
		mkdir -p "$BENCH_KEEP" && cp -r "$WORK"/. "$BENCH_KEEP"/ && echo "bench: raw results in $BENCH_KEEP"
	fi
	if [ $rc -ne 0 ]; then
		echo "bench: exit $rc after $(elapsed) s; last lines of the logs:" >&2
		for f in "$WORK"/*.log /tmp/"$P"-*.log; do
			[ -s "$f" ] || continue
			echo "== $f" >&2
			tail -n 8 "$f" | sed 's/^/    /' >&2
		done
	fi
	rm -rf "$WORK"
	exit $rc
}
trap teardown EXIT
trap 'exit 130' INT TERM

edge() { nsenter --net="/run/netns/${P}edge" "$@"; }

# ---------------------------------------------------------------------------------------
# Candidates. Each start function leaves TARGET set to what the client connects to.

FS_CFG=$WORK/failsteer.conf
fs_config() { # [extra service lines...]: failsteer's defaults but for what the topology needs
	cat >"$FS_CFG" <<-EOF
		[global]
		interfaces = ${P}e0 ${P}e1 ${P}e2
		tick_ms = 100
		pin_path = $PIN
		metrics_listen = off

		[service bench]
		address = $PRI4:$SVC_PORT
		backends = $PRI4:$SVC_PORT $BAK4:$SVC_PORT
		$(printf '%s\n' "$@")
	EOF
}

start_failsteer() { # CONFIG
	local i
	: >"$WORK/failsteer.log"
	# nsenter --net only (not ip netns exec): the pins must land on the host's bpffs.
	nsenter --net="/run/netns/${P}edge" "$FS" run -c "$1" >>"$WORK/failsteer.log" 2>&1 &
	FS_PID=$!
	for i in $(seq 300); do
		if grep -q "attached to" "$WORK/failsteer.log"; then
			# How it hooked in (tc_attach = auto: tcx links on Linux 6.6+), for the report.
			grep -o "(tcx links)\|(clsact filters)" "$WORK/failsteer.log" | head -n 1 | tr -d '()' >"$WORK/hook"
			return 0
		fi
		kill -0 "$FS_PID" 2>/dev/null || break
		sleep 0.1
	done
	die "candidate failsteer could not run: $(tail -n 3 "$WORK/failsteer.log" | tr '\n' ' ')"
}

stop_failsteer() {
	local i
	if [ -n "$FS_PID" ]; then
		kill -TERM "$FS_PID" 2>/dev/null || true
		for i in $(seq 50); do
			kill -0 "$FS_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$FS_PID" 2>/dev/null || true
		wait "$FS_PID" 2>/dev/null || true
		FS_PID=""
	fi
	# The data path outlives the daemon by design: detach to get a clean slate.
	if [ -d "$PIN" ] && [ -e "/run/netns/${P}edge" ]; then
		edge "$FS" detach -p "$PIN" >/dev/null 2>&1 || true
	fi
}

haproxy_config() { # defaults|tuned FILE
	local srv_pri srv_bak tmo extra=""
	if [ "$1" = tuned ]; then
		srv_pri="check inter 100ms fall 2 rise 2 observe layer4 error-limit 1 on-error mark-down"
		srv_bak="check inter 100ms fall 2 rise 2 backup"
		tmo=200ms
		extra=$'\toption redispatch 1\n\tretries 3'
	else
		srv_pri="check inter 2s fall 3 rise 2"
		srv_bak="check inter 2s fall 3 rise 2 backup"
		tmo=5s
	fi
	cat >"$2" <<-EOF
		global
			maxconn 9000
		defaults
			mode tcp
			timeout connect $tmo
			timeout client 30s
			timeout server 30s
		$extra
		frontend bench
			bind $EDGE_CLI4:$SVC_PORT
			default_backend sites
		backend sites
			server primary $PRI4:$SVC_PORT $srv_pri
			server backup $BAK4:$SVC_PORT $srv_bak
	EOF
}

start_haproxy() { # defaults|tuned
	local cfg=$WORK/haproxy-$1.cfg out
	haproxy_config "$1" "$cfg"
	out=$(haproxy -c -f "$cfg" 2>&1) || die "candidate haproxy-$1 could not run: bad config: $out"
	: >"$WORK/haproxy.log"
	# ip netns exec execs haproxy itself, so $! is haproxy (-db: foreground).
	ip netns exec "${P}edge" haproxy -db -f "$cfg" >>"$WORK/haproxy.log" 2>&1 &
	HA_PID=$!
}

stop_haproxy() {
	local i
	[ -n "$HA_PID" ] || return 0
	kill -TERM "$HA_PID" 2>/dev/null || true
	for i in $(seq 50); do
		kill -0 "$HA_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$HA_PID" 2>/dev/null || true
	wait "$HA_PID" 2>/dev/null || true
	HA_PID=""
}

cand_start() { # CANDIDATE
	case $1 in
	direct) TARGET=$PRI4:$SVC_PORT ;;
	failsteer | failsteer-ct200)
		# failsteer-ct200: the one setting that matches tuned HAProxy's 200 ms connect timeout.
		if [ "$1" = failsteer ]; then fs_config; else fs_config "connect_timeout_ms = 200"; fi
		start_failsteer "$FS_CFG"
		TARGET=$PRI4:$SVC_PORT
		;;
	haproxy) start_haproxy defaults && TARGET=$EDGE_CLI4:$SVC_PORT ;;
	haproxy-tuned) start_haproxy tuned && TARGET=$EDGE_CLI4:$SVC_PORT ;;
	*) die "unknown candidate $1" ;;
	esac
}

cand_stop() {
	stop_failsteer
	stop_haproxy
}

# Waits until a request through the candidate succeeds (CHECK: a command that tries once).
cand_ready() { # CANDIDATE CHECK...
	local c=$1 i
	shift
	for i in $(seq 50); do
		"$@" >/dev/null 2>&1 && return 0
		if [ -n "$HA_PID" ] && ! kill -0 "$HA_PID" 2>/dev/null; then break; fi
		if [ -n "$FS_PID" ] && ! kill -0 "$FS_PID" 2>/dev/null; then break; fi
		sleep 0.1
	done
	die "candidate $c could not run: no request through $TARGET succeeded within 5 s"
}

# Candidate order rotates with the repetition, so no candidate always goes first.
rotate() { # REP ITEMS...
	local r=$1
	shift
	local a=("$@") n=$# i
	for ((i = 0; i < n; i++)); do printf '%s ' "${a[$(((i + r) % n))]}"; done
}

# ---------------------------------------------------------------------------------------
log "failsteer benchmarks: work dir $WORK, namespaces ${P}*, pins $PIN"
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
cores=$(nproc)
mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
os=$(. /etc/os-release && echo "$PRETTY_NAME")
$PY - "$WORK/machine.json" "$cpu" "$cores" "$(uname -r)" "$(date -u '+%Y-%m-%d %H:%M UTC')" "$mem" "$os" \
	"$(haproxy -v | head -1 | awk '{print $3}')" "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)" <<'PY'
import json, sys
k = ["cpu", "cores", "kernel", "date", "memory", "os", "haproxy", "commit"]
json.dump(dict(zip(k, sys.argv[2:])), open(sys.argv[1], "w"))
PY
log "machine: $cpu, $cores cores, $mem, kernel $(uname -r), $os, $(date -u '+%Y-%m-%d %H:%M UTC')"
[ -z "$(ip netns list)" ] || log "note: other network namespaces exist (another test running?): $(ip netns list | awk '{print $1}' | tr '\n' ' ')"

# Figure 4 --------------------------------------------------------------------------------
log "figure 4: per-packet cost through bpf_prog_test_run (bench_bpf)"
"$BB/bench_bpf" --tsv "$WORK/bpf.tsv" | tee -a "$WORK/console.log" || die "bench_bpf could not run"

# Topology --------------------------------------------------------------------------------
log "topology: client -> edge -> primary 198.18.2.10 / backup 198.18.3.10 (veth offloads on)"
topo_down "$P"
topo_up "$P" on || die "could not build the topology"
for role in cli edge; do
	ip netns exec "$P$role" sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
done
for role in pri bak; do
	ip netns exec "$P$role" sysctl -qw net.core.somaxconn=4096 net.ipv4.tcp_max_syn_backlog=8192
done

start_bench_server() { # NS ADDR SITE
	ip netns exec "$1" "$BB/bench_server" --listen "$2:$SVC_PORT" --site "$3" </dev/null \
		>>"$WORK/bench_server.log" 2>&1 &
	SRV_PIDS="$SRV_PIDS $!"
}
stop_bench_servers() {
	local p
	for p in $SRV_PIDS; do kill -TERM "$p" 2>/dev/null || true; done
	for p in $SRV_PIDS; do wait "$p" 2>/dev/null || true; done
	SRV_PIDS=""
}

client() { ip netns exec "${P}cli" "$BB/bench_client" --target "$TARGET" "$@"; }

# What failsteer itself counted during a saturation repetition (its counters and the daemon's
# last words), so that the report can tell a real connect timeout from a miscounted one.
fs_evidence() { # FIGURE REP (stops failsteer)
	local fig=$1
	shift
	local st k
	st=$(edge "$FS" status --json -p "$PIN" | $PY -c '
import json, sys
d = json.load(sys.stdin)
t = d["services"][0]["backends"][0]["totals"]
print(t["attempts"], t["established"], t["timeouts"], t["syn_retransmits"], d.get("flow_misses", 0))') ||
		die "candidate failsteer: status failed"
	read -r -a v <<<"$st"
	for k in 0 1 2 3 4; do
		put "$fig" failsteer "$(echo attempts established timeouts syn_retransmits flow_misses | cut -d' ' -f$((k + 1)))" "$1" "${v[$k]}"
	done
	cand_stop
	put "$fig" failsteer answered_deadlines "$1" "$(sed -n 's/.* \([0-9]*\) deadlines already answered.*/\1/p' "$WORK/failsteer.log" | tail -n 1)"
	put "$fig" failsteer evicted "$1" "$(sed -n 's/.*flow table: \([0-9]*\) entries evicted.*/\1/p' "$WORK/failsteer.log" | tail -n 1)"
}

# Figure 1 --------------------------------------------------------------------------------
TPUT_S=2.5 LAT_S=2.5 LAT_RATE=1000 CONC=16 FO_RATE=200 CPU_S=15
printf '{"tput_s": %s, "lat_s": %s, "lat_rate": %s, "conc": %s, "fo_rate": %s, "cpu_s": %s}\n' \
	"$TPUT_S" "$LAT_S" "$LAT_RATE" "$CONC" "$FO_RATE" "$CPU_S" >"$WORK/params.json"
log "figure 1: new connections/s at saturation (${TPUT_S}s runs, 0.5s warm-up, $CONC connections in flight per worker) and latency at $LAT_RATE conn/s; $REPS repetitions"
start_bench_server "${P}pri" "$PRI4" primary
start_bench_server "${P}bak" "$BAK4" backup
TARGET=$PRI4:$SVC_PORT
cand_ready bench_server client --once
for rep in $(seq "$REPS"); do
	for c in $(rotate "$rep" direct failsteer haproxy haproxy-tuned); do
		cand_start "$c"
		cand_ready "$c" client --once
		line="rep $rep $c:"
		for w in 1 4; do
			out=$(client --workers "$w" --concurrency "$CONC" --duration "$TPUT_S" --warmup 0.5) ||
				die "candidate $c could not run: load client failed"
			cps=$(jget "$out" conn_per_s)
			[ "$(jget "$out" ok)" -gt 0 ] || die "candidate $c could not run: no request succeeded ($out)"
			put tput "$c" "w$w" "$rep" "$cps"
			put tput "$c" "w$w-failed" "$rep" "$(jget "$out" failed)"
			line="$line $w worker(s) $cps conn/s,"
		done
		if [ "$c" = failsteer ]; then
			# Where failsteer's time goes under this load: an extra run (not counted above)
			# with the kernel's BPF run-time statistics on.
			out=$($PY "$ROOT/scripts/bench_report.py" bpfstats --pin "$PIN" -- ip netns exec "${P}cli" \
				"$BB/bench_client" --target "$TARGET" --workers 4 --concurrency "$CONC" --duration 2 --warmup 0) ||
				die "candidate failsteer could not run: BPF statistics run failed"
			for k in ingress_ns_per_pkt egress_ns_per_pkt ingress_pkts_per_conn bpf_us_per_conn bpf_cpu_share; do
				put bpfstat failsteer "$k" "$rep" "$(jget "$out" "$k")"
			done
			line="$line (BPF: $(jget "$out" bpf_us_per_conn) us per connection, $(jget "$out" bpf_cpu_share) of the CPUs)"
		fi
		topo_probe_count_start "$P"
		out=$(client --workers 1 --rate "$LAT_RATE" --duration "$LAT_S" --warmup 0.5) ||
			die "candidate $c could not run: load client failed"
		put lat "$c" p50 "$rep" "$(jget "$out" p50_ms)"
		put lat "$c" p99 "$rep" "$(jget "$out" p99_ms)"
		put lat "$c" failed "$rep" "$(jget "$out" failed)"
		for role in pri bak; do
			n=$(topo_probe_count_read "$P" "$role")
			[ "$n" != unreadable ] || die "probe counters at $role unreadable"
			put probes "$c" "$role" "$rep" "$($PY -c "print(round(${n:-0} / $LAT_S, 2))")"
		done
		topo_probe_count_stop "$P"
		log "$line latency p50 $(jget "$out" p50_ms) ms p99 $(jget "$out" p99_ms) ms"
		if [ "$c" = failsteer ]; then fs_evidence fsstate "$rep"; else cand_stop; fi
	done
done

# The same saturation with the client's ports cut to 1,024, so that 4-tuples come back within
# failsteer's connect timeout: does it count connect timeouts for connections it saw answered?
log "port reuse check: failsteer at saturation with 1,024 client ports"
ip netns exec "${P}cli" sysctl -qw net.ipv4.ip_local_port_range="40000 41023"
cand_start failsteer
cand_ready failsteer client --once
out=$(client --workers 4 --concurrency "$CONC" --duration 3 --warmup 0.5) ||
	die "candidate failsteer could not run: load client failed"
fs_evidence fsreuse 1
log "  $(jget "$out" conn_per_s) conn/s; failsteer counted $(awk -F'\t' '$1 == "fsreuse" && $3 == "timeouts" {print $5}' "$RES") connect timeouts for $(awk -F'\t' '$1 == "fsreuse" && $3 == "attempts" {print $5}' "$RES") connections with $(awk -F'\t' '$1 == "fsreuse" && $3 == "syn_retransmits" {print $5}' "$RES") SYN retransmissions"
ip netns exec "${P}cli" sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
stop_bench_servers

# Figures 2 and 3 -------------------------------------------------------------------------
# One run: load at 200 new connections/s (+2 long-lived), fault at a random moment 1.5-3.5 s
# in, repair 1 s after the backup served its first request, stop 1.5 s after the primary
# served again (each wait bounded).
log "figures 2-3: failover and failback at $FO_RATE new connections/s (loadgen.py, classifier.py, fault.sh); $FO_REPS repetitions"
start_site "$P" primary || die "could not start the primary classifier"
start_site "$P" backup || die "could not start the backup classifier"

first_ok_since() { # LOG SITE SINCE -> t_done of the first ok new request sent since SINCE
	awk -F'\t' -v s="$2" -v t="$3" 'NR > 1 && NF >= 7 && $3 == "new" && $5 == "ok" && $6 == s && $1 >= t {print $2; exit}' "$1"
}

wait_site() { # LOG SITE SINCE TIMEOUT_S: status 0 once SITE served a request sent since SINCE
	local end=$(($(date +%s) + $4))
	while [ "$(date +%s)" -lt "$end" ]; do
		[ -n "$(first_ok_since "$1" "$2" "$3")" ] && return 0
		sleep 0.2
	done
	return 1
}

site_check() { # one request through the candidate, answered by SITE
	ip netns exec "${P}cli" curl -s -m 2 -X POST --data-binary x "http://$TARGET/classify" | grep -q "\"$1\""
}

failover_run() { # CANDIDATE FAULT REP
	local c=$1 kind=$2 rep=$3 L=$WORK/fo-$1-$2-$3.log fault repair note=""
	bash "$ROOT/scripts/fault.sh" "$P" repair >/dev/null || die "could not repair the primary before a run"
	start_site "$P" backup || die "backup classifier down"
	cand_start "$c"
	cand_ready "$c" site_check primary
	ip netns exec "${P}cli" $PY "$ROOT/scripts/loadgen.py" --target "$TARGET" --rate "$FO_RATE" \
		--duration 60 --long-lived 2 --log "$L" >"$WORK/loadgen.out" 2>&1 &
	LOAD_PID=$!
	sleep "$($PY -c 'import random; print(round(1.5 + 2 * random.random(), 3))')"
	fault=$(bash "$ROOT/scripts/fault.sh" "$P" "$kind") || die "fault $kind could not be injected"
	fault=${fault##* }
	if wait_site "$L" backup "$fault" 25; then
		sleep 1
	else
		note="no failover within 25 s"
	fi
	repair=$(bash "$ROOT/scripts/fault.sh" "$P" repair) || die "could not repair the primary"
	repair=${repair##* }
	if ! wait_site "$L" primary "$repair" 20; then
		note="${note:+$note; }no failback within 20 s"
	fi
	sleep 1.5
	kill -TERM "$LOAD_PID" 2>/dev/null || true
	wait "$LOAD_PID" 2>/dev/null || true
	LOAD_PID=""
	cand_stop
	$PY "$ROOT/scripts/bench_report.py" failover "$L" --candidate "$c" --fault "$kind" --rep "$rep" \
		--fault-at "$fault" --repair-at "$repair" --note "$note" >>"$WORK/failover.jsonl" ||
		die "candidate $c could not run: no usable load log for the $kind fault"
	log "rep $rep $c $kind: $(tail -n 1 "$WORK/failover.jsonl" | $PY -c 'import json,sys; print(json.load(sys.stdin)["summary"])')"
}

rep_s=0 # how long the last repetition took: the next one needs as long, figure 5 90 s more
for rep in $(seq "$FO_REPS"); do
	if [ "$rep" -gt 1 ] && [ $(($(elapsed) + rep_s + 90)) -gt "$BUDGET_S" ]; then
		log "stopping figures 2-3 after $((rep - 1)) repetitions to stay within 10 minutes"
		break
	fi
	rep_start=$(elapsed)
	for c in $(rotate "$rep" failsteer haproxy-tuned haproxy); do
		if [ "$c" = haproxy ] && [ "$rep" -gt 2 ]; then continue; fi
		for kind in reset blackhole; do
			failover_run "$c" "$kind" "$rep"
		done
		# The connect timeout only matters when SYNs vanish.
		if [ "$c" = failsteer ]; then failover_run failsteer-ct200 blackhole "$rep"; fi
	done
	rep_s=$(($(elapsed) - rep_start))
done
stop_site "$P" primary
stop_site "$P" backup

# Figure 5 --------------------------------------------------------------------------------
log "figure 5: daemon cost at tick 100 ms with 1, 100 and 10,000 services (${CPU_S}s each), map memory"
daemon_cost() { # N_SERVICES
	local n=$1 cfg=$WORK/cost-$1.conf t0 t1 rss hz
	$PY - "$cfg" "$n" "$P" "$PIN" <<-'PY'
		import sys
		path, n, p, pin = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
		with open(path, "w") as f:
		    f.write(f"[global]\ninterfaces = {p}e0 {p}e1 {p}e2\ntick_ms = 100\n"
		            f"flow_table_size = 100000\nmax_services = {max(16384, n)}\n"
		            f"max_backends = {max(4096, 2 * n)}\npin_path = {pin}\nmetrics_listen = off\n")
		    for i in range(n):
		        # Idle services: distinct ports on the two sites, nobody connects.
		        port = 10000 + i
		        f.write(f"\n[service s{i}]\naddress = 198.18.2.10:{port}\n"
		                f"backends = 198.18.2.10:{port} 198.18.3.10:{port}\n")
	PY
	start_failsteer "$cfg"
	sleep 2
	hz=$(getconf CLK_TCK)
	t0=$(awk '{print $14 + $15}' "/proc/$FS_PID/stat")
	sleep "$CPU_S"
	t1=$(awk '{print $14 + $15}' "/proc/$FS_PID/stat")
	rss=$(awk '/VmRSS/ {print $2}' "/proc/$FS_PID/status")
	put daemon "$n" cpu_s_per_h 1 "$($PY -c "print(round(($t1 - $t0) / $hz / $CPU_S * 3600, 1))")"
	put daemon "$n" rss_kib 1 "$rss"
	if [ "$n" = 1 ]; then
		# Map memory as the kernel accounts it (memlock), with flow_table_size = 100000.
		local f
		for f in "$PIN"/*; do
			bpftool -j map show pinned "$f" 2>/dev/null || true
			echo
		done | $PY -c '
import json, sys
for line in sys.stdin:
    if line.strip():
        d = json.loads(line)
        print("mapmem\t%s\tbytes\t%d\t%s" % (d.get("name", "?"), d.get("max_entries", 0), d.get("bytes_memlock", 0)))
' >>"$RES"
	fi
	log "  $n service(s): $(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v s="$CPU_S" 'BEGIN {printf "%.1f", (b - a) / hz / s * 3600}') CPU s/hour, VmRSS $((rss / 1024)) MiB"
	stop_failsteer
}
for n in 1 100 10000; do daemon_cost "$n"; done

# Report ----------------------------------------------------------------------------------
log "report"
$PY "$ROOT/scripts/bench_report.py" report --work "$WORK" --doc "$DOC" --elapsed "$(elapsed)" ||
	die "could not build the report"
log "done in $(elapsed) s; table written to ${DOC#"$ROOT"/}"
