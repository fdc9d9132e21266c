#!/bin/bash
# fault.sh - fault injection on the PRIMARY site of a topo.sh topology.
#
# Usage: fault.sh PREFIX reset|reject|blackhole|brownout [PCT]|flap [PERIOD_S]|repair
#   reset       SIGKILL the primary classifier: new SYNs get RSTs from the kernel
#   reject      nftables in ${P}pri answers new SYNs with resets (as a firewall would:
#               nft builds them CHECKSUM_PARTIAL, which veth passes on as they are);
#               the classifier keeps running
#   blackhole   drop every packet to/from the primary (nftables table inet fsfault
#               inside ${P}pri, so the edge and failsteer are untouched)
#   brownout    drop PCT % (integer 0-100, default 30) of packets, both directions
#   flap        background loop in ${P}pri: blackhole PERIOD_S (default 3) seconds,
#               clear PERIOD_S seconds, ...; pidfile /tmp/${P}-flap.pid; stops by
#               itself after FLAP_MAX_S (default 120, at most 120) seconds
#   repair      stop the flap loop, drop the nft table, restart the primary
#               classifier (with its original extra args) if it is not running
# Prints one line "fault KIND at EPOCH.NANOSECONDS" once the fault is in effect.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/topo.sh
. "$here/topo.sh"

usage() { echo "usage: fault.sh PREFIX reset|reject|blackhole|brownout [PCT]|flap [PERIOD_S]|repair" >&2; exit 2; }
[ $# -ge 2 ] || usage
P=$1 kind=$2
_topo_check_prefix "$P" || exit 2
NS=${P}pri
FLAP_PID=/tmp/$P-flap.pid
[ -e "/var/run/netns/$NS" ] || { echo "fault.sh: namespace $NS does not exist" >&2; exit 1; }

now() { date +%s.%N; }

# The nft script for a drop of PCT % of the primary's non-loopback traffic.
# Loopback stays open so local readiness checks keep working.
rules() { # PCT
	local m=""
	[ "$1" -lt 100 ] && m="numgen random mod 100 < $1"
	cat <<-EOF
		table inet fsfault
		delete table inet fsfault
		table inet fsfault {
			chain pre { type filter hook prerouting priority -300; policy accept; iifname != "lo" $m drop; }
			chain out { type filter hook output priority -300; policy accept; oifname != "lo" $m drop; }
		}
	EOF
}

apply() { # PCT
	local out
	if ! out=$(rules "$1" | ip netns exec "$NS" nft -f - 2>&1); then
		echo "fault.sh: nft failed in $NS: $out" >&2
		exit 1
	fi
}

clear_rules() {
	ip netns exec "$NS" nft delete table inet fsfault 2>/dev/null || true
}

stop_flap() {
	local pid i
	pid=$(cat "$FLAP_PID" 2>/dev/null) || return 0
	rm -f "$FLAP_PID"
	[[ $pid =~ ^[0-9]+$ ]] || return 0
	# Only our loop (pid not recycled): its argv carries the fsflap marker.
	tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q "fsflap-$P " || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 30; i++)); do
		pid_alive "$pid" || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}

case $kind in
reset)
	[ $# -eq 2 ] || usage
	pids=""
	if pid=$(site_pid "$P" primary); then pids=$pid; fi
	# Also any other classifier in the namespace (started by hand, stale pidfile).
	for q in $(ip netns pids "$NS" 2>/dev/null); do
		if tr '\0' ' ' 2>/dev/null <"/proc/$q/cmdline" | grep -q "classifier.py"; then
			pids="$pids $q"
		fi
	done
	[ -n "$pids" ] || { echo "fault.sh: no primary classifier running in $NS" >&2; exit 1; }
	# shellcheck disable=SC2086
	kill -KILL $pids 2>/dev/null || true
	t=$(now) # SIGKILL is sent; the wait below only confirms it
	for ((i = 0; i < 50; i++)); do
		alive=0
		for q in $pids; do
			if pid_alive "$q"; then alive=1; fi
		done
		[ $alive = 0 ] && break
		sleep 0.05
	done
	[ "$alive" = 0 ] || { echo "fault.sh: primary classifier did not die" >&2; exit 1; }
	echo "fault reset at $t"
	;;
blackhole)
	[ $# -eq 2 ] || usage
	stop_flap
	apply 100
	echo "fault blackhole at $(now)"
	;;
reject)
	[ $# -eq 2 ] || usage
	stop_flap
	if ! out=$(ip netns exec "$NS" nft -f - 2>&1 <<-'EOF'
		table inet fsfault
		delete table inet fsfault
		table inet fsfault {
			chain in {
				type filter hook input priority 0; policy accept;
				iifname != "lo" tcp flags & (syn | ack) == syn reject with tcp reset
			}
		}
	EOF
	); then
		echo "fault.sh: nft failed in $NS: $out" >&2
		exit 1
	fi
	echo "fault reject at $(now)"
	;;
brownout)
	[ $# -le 3 ] || usage
	pct=${3:-30}
	if ! [[ $pct =~ ^[0-9]+$ ]] || [ "$pct" -gt 100 ]; then
		echo "fault.sh: PCT must be 0-100" >&2
		exit 2
	fi
	stop_flap
	apply "$pct"
	echo "fault brownout at $(now)"
	;;
flap)
	[ $# -le 3 ] || usage
	period=${3:-3}
	if ! [[ $period =~ ^[0-9]*\.?[0-9]+$ ]] || [[ $period =~ ^[0.]+$ ]]; then
		echo "fault.sh: PERIOD_S must be a positive number of seconds" >&2
		exit 2
	fi
	max=${FLAP_MAX_S:-120}
	[[ $max =~ ^[0-9]+$ ]] && [ "$max" -le 120 ] || max=120
	stop_flap
	apply 100 # first "off" phase starts now, so the printed time is exact
	t=$(now)
	# The loop lives in the pri namespace (topo_down kills it); it writes its
	# own pid; the sleep is a child it kills on TERM.
	# shellcheck disable=SC2016 # expanded by the inner bash
	ip netns exec "$NS" bash -c '
		echo $$ >"$1"
		sp=""
		trap "[ -n \"\$sp\" ] && kill \$sp 2>/dev/null; exit 0" TERM INT
		end=$((SECONDS + $3)); on=1
		while [ $SECONDS -lt $end ]; do
			sleep "$2" & sp=$!; wait $sp; sp=""
			if [ $on = 1 ]; then
				nft delete table inet fsfault 2>/dev/null; on=0
			else
				printf "%s\n" "$4" | nft -f - 2>/dev/null; on=1
			fi
		done
		nft delete table inet fsfault 2>/dev/null
		exit 0
	' "fsflap-$P" "$FLAP_PID" "$period" "$max" "$(rules 100)" </dev/null >/dev/null 2>&1 &
	for ((i = 0; i < 50; i++)); do
		[ -s "$FLAP_PID" ] && break
		sleep 0.02
	done
	[ -s "$FLAP_PID" ] || { echo "fault.sh: flap loop did not start" >&2; exit 1; }
	echo "fault flap at $t"
	;;
repair)
	[ $# -eq 2 ] || usage
	stop_flap
	clear_rules
	if ! site_running "$P" primary; then
		args=()
		if [ -s "/tmp/$P-primary.args" ]; then
			mapfile -t args <"/tmp/$P-primary.args"
		fi
		start_site "$P" primary ${args[@]+"${args[@]}"} || exit 1
	fi
	echo "fault repair at $(now)"
	;;
*) usage ;;
esac
