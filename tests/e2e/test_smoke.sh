#!/bin/bash
# Data path smoke test: real TCP connections from a client namespace through the edge node
# (gateway mode) and from the edge node itself (host mode), IPv4 and IPv6, before and after
# the active backend is switched, with checksum offload off (a wrong checksum then fails the
# connection), on (CHECKSUM_PARTIAL skbs, never verified) and mixed (CHECKSUM_PARTIAL skbs
# rewritten at the edge, then checksummed in software and verified by the receiver). Services on the primary's own address (only
# the backup's address is rewritten) and on virtual addresses with another port (address
# and port rewritten both ways, for every connection). A connection opened before a switch
# stays on its backend. Connections that closed leave the flow table.
set -eu
E2E_ARG_BUILD=${1:-build}
source "$(dirname "$0")/lib.sh"
e2e_init sm

URL4="http://$PRI4:$SVC_PORT/classify"
URL6="http://[$PRI6]:$SVC_PORT/classify"
VIP4=198.18.9.9
VIP6=2001:db8:9::9
VURL4="http://$VIP4:80/classify"
VURL6="http://[$VIP6]:80/classify"

# A request larger than the backup's path takes in one packet: 6000 bytes.
head -c 6000 /dev/zero | tr '\0' x >"$WORK/big.bin"
big_site_of() { # NS TARGET_URL
	ip netns exec "$1" curl -s -m 3 -X POST --data-binary @"$WORK/big.bin" "$2" |
		$PY -c 'import json,sys; print(json.load(sys.stdin)["site"])' 2>/dev/null
}

pad_site_of() { # NS URL: the site of a large answer, and "slow" if it took 150 ms or more
	# (a reply the data path failed to hold back waits for the backend's retransmission
	# timeout, at least 200 ms, before a segment small enough is sent)
	ip netns exec "$1" curl -s -m 3 -w '\n%{time_total}' "$2" |
		$PY -c 'import json,sys; b,t=sys.stdin.read().rsplit("\n",1); d=json.loads(b); print((d["site"] if len(d["pad"]) == 6000 else "short") + (" slow %s s" % t if float(t) >= 0.15 else ""))' 2>/dev/null
}

# A 6000-byte answer from the backup over the 1280-byte hop to the client, client and backup
# having forgotten the path MTUs they learned (an MSS or a path MTU that fits would pass
# without the error).
pad_check() { # WHAT BASE_URL
	local ns
	for ns in cli bak; do
		ip -n "${P}$ns" route flush cache
		ip -n "${P}$ns" -6 route flush cache
	done
	e2e_check "path MTU discovery toward the client, $1: a 6000-byte answer" \
		eq "$(pad_site_of "${P}cli" "$2/pad?bytes=6000")" backup
}

flow_entries() { # a failed dump is not an empty table
	local out
	out=$(bpftool map dump pinned "$PIN/flows" 2>&1) || { echo "dump failed: $out"; return; }
	grep -c '"dir"' <<<"$out" || true
}
no_flows() { [ "$(flow_entries)" = 0 ]; }

for offload in off on mixed; do
	echo "-- checksum offload $offload"
	topo_down "$P"
	topo_up "$P" "$offload"
	start_site "$P" primary
	start_site "$P" backup
	e2e_config "[service classifier6]" "address = [$PRI6]:$SVC_PORT" \
		"backends = [$PRI6]:$SVC_PORT [$BAK6]:$SVC_PORT" \
		"[service vip4]" "address = $VIP4:80" "backends = $PRI4:$SVC_PORT $BAK4:$SVC_PORT" \
		"[service vip6]" "address = [$VIP6]:80" "backends = [$PRI6]:$SVC_PORT [$BAK6]:$SVC_PORT"
	e2e_start_daemon

	e2e_check "gateway v4 before switch: primary answers" eq "$(site_of "${P}cli" "$URL4")" primary
	e2e_check "host v4 before switch: primary answers" eq "$(site_of "${P}edge" "$URL4")" primary
	e2e_check "gateway v6 before switch: primary answers" eq "$(site_of "${P}cli" "$URL6")" primary
	e2e_check "gateway v4 virtual address and port: primary answers" \
		eq "$(site_of "${P}cli" "$VURL4")" primary
	e2e_check "gateway v6 virtual address and port: primary answers" \
		eq "$(site_of "${P}cli" "$VURL6")" primary

	# A long-lived connection (and a little new-connection load) across both switches.
	load_start "${P}cli" "long-$offload" "$PRI4:$SVC_PORT" 5 5 --long-lived 1 --long-interval-ms 100
	sleep 1.5
	fsctl failover classifier 1 >/dev/null
	fsctl failover classifier6 1 >/dev/null
	fsctl failover vip4 1 >/dev/null
	fsctl failover vip6 1 >/dev/null
	e2e_check "gateway v4 after failover: backup answers" eq "$(site_of "${P}cli" "$URL4")" backup
	e2e_check "host v4 after failover: backup answers (FIB redirect to another interface)" \
		eq "$(site_of "${P}edge" "$URL4")" backup
	e2e_check "gateway v6 after failover: backup answers" eq "$(site_of "${P}cli" "$URL6")" backup
	e2e_check "host v6 after failover: backup answers" eq "$(site_of "${P}edge" "$URL6")" backup
	e2e_check "gateway v4 virtual address and port after failover: backup answers" \
		eq "$(site_of "${P}cli" "$VURL4")" backup
	e2e_check "gateway v6 virtual address and port after failover: backup answers" \
		eq "$(site_of "${P}cli" "$VURL6")" backup
	# A smaller MTU on the way to the backup than at both ends: the edge answers the
	# client's full-size segments with fragmentation needed / packet too big, which must
	# quote them as the client sent them (to the service) for its path MTU to drop.
	ip -n "${P}edge" link set "${P}e2" mtu 1280
	e2e_check "path MTU discovery through the rewrite, v4 virtual address: a 6000-byte request" \
		eq "$(big_site_of "${P}cli" "$VURL4")" backup
	e2e_check "path MTU discovery through the rewrite, v6 virtual address: a 6000-byte request" \
		eq "$(big_site_of "${P}cli" "$VURL6")" backup
	ip -n "${P}edge" link set "${P}e2" mtu 1500
	# The same toward the client, for the backup's 6000-byte answer: the edge's own
	# fragmentation needed / packet too big goes to the service address, the primary's
	# or a virtual one (routed via the primary, as docs/operations.md advises), and must
	# reach the backup quoting its answer as it sent it. The client's requests are small.
	ip -n "${P}edge" route replace "$VIP4/32" via "$PRI4"
	ip -n "${P}edge" -6 route replace "$VIP6/128" via "$PRI6"
	ip -n "${P}edge" link set "${P}e0" mtu 1280
	pad_check "v4 primary's address" "http://$PRI4:$SVC_PORT"
	pad_check "v6 primary's address" "http://[$PRI6]:$SVC_PORT"
	pad_check "v4 virtual address" "http://$VIP4:80"
	pad_check "v6 virtual address" "http://[$VIP6]:80"
	# The service address's next hop dead (no ARP/NDP answer, as with the primary host
	# down): the edge's errors cannot go that way, nor need to (they go to the backup).
	ip -n "${P}edge" route replace "$VIP4/32" via 198.18.2.99
	ip -n "${P}edge" -6 route replace "$VIP6/128" via 2001:db8:2::99
	ip netns exec "${P}edge" nft -f - <<-NFT
		table inet fspmtu {
			chain out { type filter hook output priority 0; policy accept;
				ip daddr $VIP4 icmp type destination-unreachable counter;
				ip6 daddr $VIP6 icmpv6 type packet-too-big counter; }
		}
	NFT
	pad_check "v4 virtual address routed to a dead next hop" "http://$VIP4:80"
	pad_check "v6 virtual address routed to a dead next hop" "http://[$VIP6]:80"
	# Every reply too big was held back (GSO ones too, with offloads on): none of the
	# edge's errors went to the service address (a retransmission could hide that).
	# (two counters: a failed listing must not read as zero)
	to_vip=$(ip netns exec "${P}edge" nft list table inet fspmtu |
		awk '/counter packets/ {c++; for (i = 1; i < NF; i++) if ($i == "packets") n += $(i + 1)}
			END {print (c == 2 ? n + 0 : "unreadable")}')
	report "the edge's own errors addressed to the virtual addresses: $to_vip"
	e2e_check "no error of the edge's went to the service address" eq "$to_vip" 0
	ip netns exec "${P}edge" nft delete table inet fspmtu
	ip -n "${P}edge" link set "${P}e0" mtu 1500
	ip -n "${P}edge" route del "$VIP4/32"
	ip -n "${P}edge" -6 route del "$VIP6/128"
	sleep 1.5
	fsctl failback classifier >/dev/null
	fsctl failback classifier6 >/dev/null
	e2e_check "gateway v4 after failback: primary answers" eq "$(site_of "${P}cli" "$URL4")" primary
	e2e_check "host v4 after failback: primary answers" eq "$(site_of "${P}edge" "$URL4")" primary
	e2e_check "gateway v6 after failback: primary answers" eq "$(site_of "${P}cli" "$URL6")" primary
	load_wait
	L="$WORK/long-$offload.log"
	long_total=$(awk -F'\t' '$3=="long"' "$L" | wc -l)
	long_primary=$(awk -F'\t' '$3=="long" && $5=="ok" && $6=="primary"' "$L" | wc -l)
	new_failed=$(awk -F'\t' 'NR>1 && $5!="ok"' "$L" | wc -l)
	report "long-lived requests $long_total, answered by the primary $long_primary; failed requests $new_failed"
	e2e_check "long-lived connection stayed on the primary through failover and failback" \
		eq "$long_primary" "$long_total"
	e2e_check "long-lived connection made >= 30 requests" ge "$long_total" 30
	e2e_check "no request failed across both switches" eq "$new_failed" 0
	# Every connection above closed with two FINs: the data path deleted their entries
	# with the last ACK (the daemon's sweep would take 30 s), steered or not.
	wait_until 3 no_flows || true
	report "flow entries left after every connection closed: $(flow_entries)"
	e2e_check "closed connections left the flow table with their last ACK" no_flows
	e2e_stop_daemon
	fsctl detach >/dev/null
done
e2e_finish
