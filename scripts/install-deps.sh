#!/bin/sh
# Installs the Debian 12 packages failsteer needs to build, test, demo and benchmark,
# but only those missing. Usage: scripts/install-deps.sh [build|check|bench]
set -eu
set -- ${1:-build}
pkgs="clang llvm make gcc pkg-config libbpf-dev bpftool libelf-dev zlib1g-dev libinih-dev libmicrohttpd-dev libcmocka-dev libclang-rt-14-dev iproute2"
case "$1" in
check) pkgs="$pkgs bc ethtool nftables curl python3 util-linux procps prometheus yamllint python3-yaml systemd jq strace" ;;
bench) pkgs="$pkgs ethtool nftables curl python3 util-linux procps haproxy" ;;
esac
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# npm packages for the deployment checks of tests/e2e/test_ops.sh: the Kubernetes API
# schema (kubernetes-models) and TypeScript for deploy/kubernetes/validate.cjs, under
# $FS_NPM_TOOLS (the test looks there), installed once per version list.
FS_NPM_TOOLS=${FS_NPM_TOOLS:-/usr/local/lib/failsteer-check}
npm_want="kubernetes-models@4.5.1 yaml@2.9.1 typescript@5.9.3"
npm_tools() {
	[ "$1" = check ] || return 0
	[ "$(cat "$FS_NPM_TOOLS/.installed" 2>/dev/null)" = "$npm_want" ] && return 0
	[ "$(id -u)" = 0 ] || { echo "install-deps: npm packages $npm_want missing (run as root)" >&2; return 1; }
	if ! command -v npm >/dev/null; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm >/dev/null
	fi
	mkdir -p "$FS_NPM_TOOLS"
	# One installer at a time (parallel test runs share the directory).
	(
		flock 9
		[ "$(cat "$FS_NPM_TOOLS/.installed" 2>/dev/null)" = "$npm_want" ] && exit 0
		echo "install-deps: installing npm packages $npm_want in $FS_NPM_TOOLS"
		# shellcheck disable=SC2086
		npm install --prefix "$FS_NPM_TOOLS" --no-audit --no-fund --no-save --loglevel=error $npm_want >/dev/null &&
			echo "$npm_want" >"$FS_NPM_TOOLS/.installed"
	) 9>"$FS_NPM_TOOLS/.lock"
}
npm_tools_or_warn() {
	npm_tools "$1" || echo "install-deps: warning: npm packages not installed (tests/e2e/test_ops.sh will skip)" >&2
}
if [ -z "$missing" ]; then
	npm_tools_or_warn "$1"
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing Debian packages:$missing (run as root to install them)" >&2
	exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# Packages with a service (prometheus, haproxy) must not start it on the host, listening on
# its interfaces: the tests run their own instances in namespaces. A policy-rc.d that
# refuses every start, for the length of the install, unless the machine has one already.
policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
	policy=/usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	printf '#!/bin/sh\n# failsteer install-deps: no service starts during the install\nexit 101\n' >"$policy"
	chmod 755 "$policy"
fi
apt-get install -y --no-install-recommends $missing >/dev/null 2>&1 || {
	apt-get update >/dev/null && apt-get install -y --no-install-recommends $missing
}
if [ -n "$policy" ]; then
	rm -f "$policy"
	trap - EXIT
	# Nor at the next boot: only the services of packages installed just now.
	if command -v systemctl >/dev/null; then
		for svc in prometheus haproxy; do
			case " $missing " in *" $svc "*) systemctl disable --quiet "$svc" 2>/dev/null || true ;; esac
		done
	fi
fi
npm_tools_or_warn "$1"
