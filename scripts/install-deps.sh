#!/bin/sh
# Installs the Debian 12 packages failsteer needs to build, test, demo and benchmark,
# but only those missing. Usage: scripts/install-deps.sh [build|check|bench]
set -eu
set -- ${1:-build}
pkgs="clang llvm make gcc pkg-config libbpf-dev bpftool libelf-dev zlib1g-dev libinih-dev libmicrohttpd-dev libcmocka-dev libclang-rt-14-dev iproute2"
case "$1" in
check) pkgs="$pkgs ethtool nftables curl python3 util-linux procps prometheus yamllint systemd" ;;
bench) pkgs="$pkgs ethtool nftables curl python3 util-linux procps haproxy" ;;
esac
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing Debian packages:$missing (run as root to install them)" >&2
	exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends $missing >/dev/null 2>&1 || {
	apt-get update >/dev/null && apt-get install -y --no-install-recommends $missing
}
