# shellcheck shell=bash
# topo.sh - test topology library for failsteer end-to-end tests (source it).
#
#   cli (${P}c0) ---- (${P}e0) edge (${P}e1) ---- (${P}p0) pri   primary site
#                                   (${P}e2) ---- (${P}b0) bak   backup site
#
#   198.18.1.0/24 2001:db8:1::/64  cli .2 / edge .1
#   198.18.2.0/24 2001:db8:2::/64  edge .1 / pri .10   (service 198.18.2.10:8080)
#   198.18.3.0/24 2001:db8:3::/64  edge .1 / bak .10
#
# Everything lives in network namespaces named ${PREFIX}{cli,edge,pri,bak};
# veth devices are ${PREFIX}{c0,e0,e1,e2,p0,b0}. Nothing on the host is touched.
#
# Functions (PREFIX: 1-6 chars [a-z0-9], starting with a letter):
#   topo_up PREFIX [off|on|mixed]  build it (off: veth tx/rx checksum offload off; mixed:
#                                  on, except tx off on the edge's devices and rx off on
#                                  their peers, so CHECKSUM_PARTIAL skbs reach the edge and
#                                  what leaves it is checksummed in software and verified)
#   topo_down PREFIX               kill everything inside, delete it (never fails)
#   topo_cleanup_stale PREFIX      alias of topo_down
#   topo_ns PREFIX cli|edge|pri|bak   print a namespace name
#   topo_claim_prefix BASE         set P to BASE + digits (6 chars in all) that no live
#                                  run owns, and own it (/run/lock/failsteer-topo-$P.owner
#                                  holds this shell's pid): parallel runs never share a
#                                  prefix, and only its owner cleans a prefix's leftovers;
#                                  leftovers of runs that died (killed) are swept first
#   topo_release_prefix            give P up (teardown)
#   start_site PREFIX primary|backup [classifier args...]
#                                  start scripts/classifier.py in pri/bak on the
#                                  site's v4+v6 address, port 8080; waits <= 5 s
#   stop_site PREFIX primary|backup   SIGTERM (then SIGKILL) the site's classifier
#   topo_probe_count_start PREFIX [any]  count SYNs to the service port (any: to any port,
#                                  IPv6 too) from the edge's own address at each site
#                                  (probes, health checks; nftables)
#   topo_probe_count_read PREFIX pri|bak   print that count
#   topo_probe_count_stop PREFIX   remove the counters
#   site_running PREFIX primary|backup   status 0 if the classifier is alive
# Site files: /tmp/${P}-${site}.pid, .log, .args (extra args, reused by repair).

TOPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOPO_PYTHON=${TOPO_PYTHON:-/usr/bin/python3}

export CLI4=198.18.1.2 CLI6=2001:db8:1::2
export EDGE_CLI4=198.18.1.1 EDGE_CLI6=2001:db8:1::1
export EDGE_PRI4=198.18.2.1 EDGE_PRI6=2001:db8:2::1
export EDGE_BAK4=198.18.3.1 EDGE_BAK6=2001:db8:3::1
export PRI4=198.18.2.10 PRI6=2001:db8:2::10
export BAK4=198.18.3.10 BAK6=2001:db8:3::10
export SVC_PORT=8080

_topo_check_prefix() {
	if ! [[ ${1:-} =~ ^[a-z][a-z0-9]{0,5}$ ]]; then
		echo "topo: bad prefix '${1:-}' (1-6 chars [a-z0-9], starting with a letter)" >&2
		return 1
	fi
}

topo_claim_prefix() { # BASE (1-3 letters)
	local digits=$((6 - ${#1})) mod i owner f fd
	((digits > 3)) && digits=3
	mod=$((10 ** digits))
	mkdir -p /run/lock
	exec {fd}>/run/lock/failsteer-topo.lock
	flock -w 10 "$fd" || { echo "topo: cannot lock /run/lock/failsteer-topo.lock" >&2; return 1; }
	_topo_sweep_dead_owners
	for ((i = 0; i < mod; i++)); do
		P=$1$(printf "%0${digits}d" $((($$ + i) % mod)))
		f=/run/lock/failsteer-topo-$P.owner
		owner=$(cat "$f" 2>/dev/null || true)
		# Taken while its owner lives (a dead owner's leftovers are ours to clean).
		if [ -n "$owner" ] && [ "$owner" != "$$" ] && kill -0 "$owner" 2>/dev/null; then
			continue
		fi
		echo "$$" >"$f"
		exec {fd}>&-
		return 0
	done
	exec {fd}>&-
	echo "topo: every prefix $1* is taken" >&2
	return 1
}

# Namespaces and pins of prefixes whose owner died without its teardown (SIGKILL).
_topo_sweep_dead_owners() {
	local f p owner d
	for f in /run/lock/failsteer-topo-*.owner; do
		[ -e "$f" ] || continue
		owner=$(cat "$f" 2>/dev/null || true)
		[ -n "$owner" ] && kill -0 "$owner" 2>/dev/null && continue
		p=${f#/run/lock/failsteer-topo-}
		p=${p%.owner}
		_topo_check_prefix "$p" 2>/dev/null || { rm -f "$f"; continue; }
		topo_down "$p" >/dev/null 2>&1 || true
		for d in "/sys/fs/bpf/fs-test-$p" "/sys/fs/bpf/fs-bench-$p" "/sys/fs/bpf/failsteer-$p"; do
			[ -d "$d" ] && { rm -f "$d"/* 2>/dev/null; rmdir "$d" 2>/dev/null; }
		done
		# and its work files (tests, benchmark, demo)
		rm -rf /tmp/fs-e2e-"$p".* /tmp/fs-bench-"$p".* /tmp/failsteer-demo-"$p".* 2>/dev/null
		rm -f /tmp/"$p"-*.pid /tmp/"$p"-*.log /tmp/"$p"-*.args 2>/dev/null
		rm -f "$f"
	done
	return 0
}

topo_release_prefix() {
	[ "$(cat "/run/lock/failsteer-topo-${P:-}.owner" 2>/dev/null)" = "$$" ] &&
		rm -f "/run/lock/failsteer-topo-$P.owner"
	return 0
}

topo_ns() { # PREFIX ROLE
	_topo_check_prefix "${1:-}" || return 1
	case ${2:-} in
	cli | edge | pri | bak) echo "$1$2" ;;
	*) echo "topo_ns: unknown role '${2:-}' (cli|edge|pri|bak)" >&2; return 1 ;;
	esac
}

# Runs a command; on failure prints what failed with its error output.
_topo_run() { # DESCRIPTION CMD...
	local what=$1 out
	shift
	if ! out=$("$@" 2>&1); then
		echo "topo_up: $what failed: $*" >&2
		[ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/    /' >&2
		return 1
	fi
}

# One veth pair: LNS LDEV LADDR4 LADDR6 RNS RDEV RADDR4 RADDR6 OFFLOAD
_topo_link() {
	local lns=$1 ldev=$2 l4=$3 l6=$4 rns=$5 rdev=$6 r4=$7 r6=$8 offload=$9
	_topo_run "veth $ldev/$rdev" ip -n "$lns" link add "$ldev" type veth peer name "$rdev" netns "$rns" || return 1
	local ns dev a4 a6 side
	for side in l r; do
		if [ $side = l ]; then ns=$lns dev=$ldev a4=$l4 a6=$l6; else ns=$rns dev=$rdev a4=$r4 a6=$r6; fi
		_topo_run "address on $dev" ip -n "$ns" addr add "$a4/24" dev "$dev" || return 1
		_topo_run "address on $dev" ip -n "$ns" -6 addr add "$a6/64" dev "$dev" nodad || return 1
		_topo_run "link up $dev" ip -n "$ns" link set "$dev" up || return 1
		case $offload in
		off) _topo_run "ethtool on $dev" ip netns exec "$ns" ethtool -K "$dev" tx off rx off || return 1 ;;
		mixed)
			if [ "$ns" = "${ns%edge}edge" ]; then
				_topo_run "ethtool on $dev" ip netns exec "$ns" ethtool -K "$dev" tx off || return 1
			else
				_topo_run "ethtool on $dev" ip netns exec "$ns" ethtool -K "$dev" rx off || return 1
			fi
			;;
		esac
	done
}

topo_up() { # PREFIX [off|on]
	local p=${1:-} offload=${2:-off} role
	_topo_check_prefix "$p" || return 1
	case $offload in on | off | mixed) ;; *) echo "topo_up: offload must be on|off|mixed, not '$offload'" >&2; return 1 ;; esac
	for role in cli edge pri bak; do
		if [ -e "/var/run/netns/$p$role" ]; then
			echo "topo_up: namespace $p$role already exists (run topo_down $p first)" >&2
			return 1
		fi
	done
	if ! _topo_up "$p" "$offload"; then
		topo_down "$p"
		return 1
	fi
}

_topo_up() {
	local p=$1 offload=$2 role ns
	for role in cli edge pri bak; do
		ns=$p$role
		_topo_run "namespace $ns" ip netns add "$ns" || return 1
		_topo_run "lo up in $ns" ip -n "$ns" link set lo up || return 1
		# Global addresses use nodad; also keep link-local DAD from delaying anything.
		_topo_run "sysctl in $ns" ip netns exec "$ns" sysctl -qw \
			net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 || return 1
	done
	_topo_link "${p}cli" "${p}c0" "$CLI4" "$CLI6" "${p}edge" "${p}e0" "$EDGE_CLI4" "$EDGE_CLI6" "$offload" || return 1
	_topo_link "${p}edge" "${p}e1" "$EDGE_PRI4" "$EDGE_PRI6" "${p}pri" "${p}p0" "$PRI4" "$PRI6" "$offload" || return 1
	_topo_link "${p}edge" "${p}e2" "$EDGE_BAK4" "$EDGE_BAK6" "${p}bak" "${p}b0" "$BAK4" "$BAK6" "$offload" || return 1

	local gw4 gw6
	for role in cli pri bak; do
		case $role in
		cli) gw4=$EDGE_CLI4 gw6=$EDGE_CLI6 ;;
		pri) gw4=$EDGE_PRI4 gw6=$EDGE_PRI6 ;;
		bak) gw4=$EDGE_BAK4 gw6=$EDGE_BAK6 ;;
		esac
		_topo_run "default route in $p$role" ip -n "$p$role" route add default via "$gw4" || return 1
		_topo_run "default route in $p$role" ip -n "$p$role" -6 route add default via "$gw6" || return 1
	done

	_topo_run "forwarding/rp_filter in ${p}edge" ip netns exec "${p}edge" sysctl -qw \
		net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
		net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
		"net.ipv4.conf.${p}e0.rp_filter=0" "net.ipv4.conf.${p}e1.rp_filter=0" \
		"net.ipv4.conf.${p}e2.rp_filter=0" || return 1
}

# Never fails, whatever state the topology is in.
topo_down() { # PREFIX
	local p=${1:-} role ns pids i left
	_topo_check_prefix "$p" || return 0
	# Stop every process inside (sites, load generators, flap loops, failsteer).
	for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
		left=0
		for role in cli edge pri bak; do
			ns=$p$role
			[ -e "/var/run/netns/$ns" ] || continue
			pids=$(ip netns pids "$ns" 2>/dev/null) || true
			[ -n "$pids" ] || continue
			left=1
			if [ "$i" -le 2 ]; then
				# shellcheck disable=SC2086
				kill -TERM $pids 2>/dev/null || true
			else
				# shellcheck disable=SC2086
				kill -KILL $pids 2>/dev/null || true
			fi
		done
		[ $left = 0 ] && break
		sleep 0.1
	done
	for role in cli edge pri bak; do
		ns=$p$role
		[ -e "/var/run/netns/$ns" ] && { ip netns del "$ns" 2>/dev/null || true; }
	done
	rm -f "/tmp/$p-primary.pid" "/tmp/$p-backup.pid" "/tmp/$p-flap.pid" \
		"/tmp/$p-primary.args" "/tmp/$p-backup.args" 2>/dev/null || true
	return 0
}

topo_cleanup_stale() { topo_down "$@"; }

# Status 0 if PID exists and is not a zombie (orphans may wait a while for init
# to reap them, so `kill -0` alone is not a liveness test).
pid_alive() { # PID
	local st
	st=$(awk '{print $3}' 2>/dev/null <"/proc/${1:-x}/stat") || return 1
	[ -n "$st" ] && [ "$st" != Z ]
}

# Site helpers ---------------------------------------------------------------

# Prints "NS ADDR4 ADDR6" for a site.
_site_info() { # PREFIX SITE
	case ${2:-} in
	primary) echo "${1}pri $PRI4 $PRI6" ;;
	backup) echo "${1}bak $BAK4 $BAK6" ;;
	*) echo "site must be primary|backup, not '${2:-}'" >&2; return 1 ;;
	esac
}

# Prints the pid of the running classifier of a site, status 1 if none.
site_pid() { # PREFIX SITE
	local p=${1:-} site=${2:-} info ns pid
	info=$(_site_info "$p" "$site") || return 1
	ns=${info%% *}
	pid=$(cat "/tmp/$p-$site.pid" 2>/dev/null) || return 1
	[[ $pid =~ ^[0-9]+$ ]] && pid_alive "$pid" || return 1
	# Same process (not a recycled pid) and in the site's namespace.
	tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q "classifier.py --site $site " || return 1
	[ "$(ip netns identify "$pid" 2>/dev/null)" = "$ns" ] || return 1
	echo "$pid"
}

site_running() { site_pid "$@" >/dev/null; }

start_site() { # PREFIX SITE [classifier args...]
	local p=${1:-} site=${2:-} info ns a4 a6 pid i
	_topo_check_prefix "$p" || return 1
	info=$(_site_info "$p" "$site") || return 1
	shift 2
	read -r ns a4 a6 <<<"$info"
	if [ ! -e "/var/run/netns/$ns" ]; then
		echo "start_site: namespace $ns does not exist" >&2
		return 1
	fi
	if site_running "$p" "$site"; then
		return 0
	fi
	local pidfile=/tmp/$p-$site.pid log=/tmp/$p-$site.log
	rm -f "$pidfile"
	: >"/tmp/$p-$site.args"
	[ $# -eq 0 ] || printf '%s\n' "$@" >"/tmp/$p-$site.args"
	# Detached from our stdout/stderr so $(...) callers never hang on it.
	ip netns exec "$ns" "$TOPO_PYTHON" "$TOPO_DIR/classifier.py" --site "$site" \
		--listen "$a4:$SVC_PORT" --listen "[$a6]:$SVC_PORT" --pidfile "$pidfile" "$@" \
		</dev/null >>"$log" 2>&1 &
	pid=$!
	disown "$pid" 2>/dev/null || true # no "Killed" job notice from the caller's shell
	# The classifier writes its pidfile once every socket listens.
	for ((i = 0; i < 50; i++)); do
		if [ "$(cat "$pidfile" 2>/dev/null)" = "$pid" ] &&
			ip netns exec "$ns" timeout 1 bash -c "exec 3<>/dev/tcp/$a4/$SVC_PORT" 2>/dev/null; then
			return 0
		fi
		if ! pid_alive "$pid"; then
			echo "start_site: classifier for $site exited early, log $log:" >&2
			tail -n 20 "$log" | sed 's/^/    /' >&2
			return 1
		fi
		sleep 0.1
	done
	echo "start_site: $site not accepting on $a4:$SVC_PORT after 5 s, log $log" >&2
	kill -KILL "$pid" 2>/dev/null || true
	return 1
}

stop_site() { # PREFIX SITE
	local pid i
	pid=$(site_pid "$@") || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 30; i++)); do
		pid_alive "$pid" || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	return 0
}

topo_probe_count_start() { # PREFIX [any]
	local role src src6 rules
	for role in pri bak; do
		[ $role = pri ] && src=$EDGE_PRI4 src6=$EDGE_PRI6 || src=$EDGE_BAK4 src6=$EDGE_BAK6
		if [ "${2:-}" = any ]; then
			rules="ip saddr $src tcp flags & (syn | ack) == syn counter;
				ip6 saddr $src6 tcp flags & (syn | ack) == syn counter;"
		else
			rules="ip saddr $src tcp dport $SVC_PORT tcp flags & (syn | ack) == syn counter;"
		fi
		ip netns exec "$1$role" nft -f - <<-EOF
			table inet fsprobes {
				chain pre { type filter hook prerouting priority -200; policy accept;
					$rules }
			}
		EOF
	done
}

topo_probe_count_read() { # PREFIX ROLE -> packets (of all counters), "unreadable" on failure
	ip netns exec "$1$2" nft list table inet fsprobes |
		awk '/counter packets/ {c++; for (i = 1; i < NF; i++) if ($i == "packets") n += $(i + 1)}
			END {print (c ? n + 0 : "unreadable")}'
}

topo_probe_count_stop() { # PREFIX
	ip netns exec "${1}pri" nft delete table inet fsprobes 2>/dev/null || true
	ip netns exec "${1}bak" nft delete table inet fsprobes 2>/dev/null || true
}
