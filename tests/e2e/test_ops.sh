#!/bin/bash
# Operations (docs/operations.md): the alert rules and their unit tests, the Kubernetes
# manifests against the API schema, `make install` and the systemd unit; then, live:
# failsteer runs with the unit's capability bounding set, a real Prometheus server
# scrapes it (every 1 s) through a reset failover and failback and is queried over its
# HTTP API, a live scrape passes `promtool check metrics`, the dashboard's queries and
# the alerts run against that Prometheus, the bpftool commands of the docs print the
# fields they describe, `failsteer status` / --json / --watch show the failover, and
# each capability of the unit is shown to be needed. All traffic stays in the test's
# namespaces and their loopback. About 30 s.
# shellcheck disable=SC2016 # commands are kept as the docs write them, $PIN and all
set -eu
# shellcheck disable=SC2034 # read by lib.sh
E2E_ARG_BUILD=${1:-build}
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"
e2e_init op
T0=$(date +%s)
ROOT=$E2E_ROOT
DOCS=$ROOT/docs/operations.md
UNIT=$ROOT/deploy/systemd/failsteer.service
K8S=$ROOT/deploy/kubernetes/daemonset.yaml
DASH=$ROOT/deploy/grafana/failsteer-dashboard.json
NPM_TOOLS=${FS_NPM_TOOLS:-/usr/local/lib/failsteer-check}
PROM_PORT=9090
METRICS_PORT=9469
UNIT_CAPS=$(sed -n 's/^CapabilityBoundingSet=//p' "$UNIT")
UNIT_AF=$(sed -n 's/^RestrictAddressFamilies=//p' "$UNIT")
RELOAD_CMD=$(sed -n 's/^ExecReload=//p' "$UNIT")

# Tools: installed by `make check`; when run by hand, install what is missing.
"$ROOT/scripts/install-deps.sh" check >"$WORK/install-deps.out" 2>&1 || true
for t in promtool prometheus yamllint systemd-analyze bpftool jq curl setpriv strace tc; do
	command -v "$t" >/dev/null || { echo "SKIP: $t not installed (scripts/install-deps.sh check)"; exit 77; }
done

quiet() { "$@" >/dev/null 2>&1; }

# ---- (3) alert rules ------------------------------------------------------------------
e2e_check "promtool check rules deploy/prometheus/alerts.yml" \
	promtool check rules "$ROOT/deploy/prometheus/alerts.yml"
# The Kubernetes scrape job: its name is the one the alerts select on; the rest passes
# promtool (Debian's build has no Kubernetes discovery: static targets stand in for it).
mkdir -p "$WORK/promk8s"
cp "$ROOT/deploy/prometheus/alerts.yml" "$WORK/promk8s/"
sed -e 's/^\( *\)kubernetes_sd_configs:/\1static_configs:/' -e 's/^\( *\)- role: pod/\1- targets: ["198.18.0.1:9469"]/' \
	"$ROOT/deploy/prometheus/prometheus-kubernetes.yml" >"$WORK/promk8s/prometheus.yml"
e2e_check "deploy/prometheus/prometheus-kubernetes.yml passes promtool check config, rules included" \
	quiet promtool check config "$WORK/promk8s/prometheus.yml"
e2e_check "... and its job is the one the alerts select on (job=\"failsteer\")" \
	eq "$(grep -c '^  - job_name: failsteer$' "$ROOT/deploy/prometheus/prometheus-kubernetes.yml"):$(grep -c 'up{job="failsteer"}' "$ROOT/deploy/prometheus/alerts.yml")" "1:2"
e2e_check "promtool test rules deploy/prometheus/alerts_test.yml (each alert fires when it should, only then)" \
	bash -c "cd '$ROOT/deploy/prometheus' && promtool test rules alerts_test.yml"

# ---- (8) Kubernetes manifests ---------------------------------------------------------
e2e_check "yamllint on deploy/ (Kubernetes manifests, Prometheus rules)" \
	yamllint -s -c "$ROOT/deploy/.yamllint" "$ROOT/deploy"
# The schema check needs npm packages (scripts/install-deps.sh check): without them only it
# is skipped, and in CI (FS_REQUIRE_ALL=1) that is a failure.
if command -v node >/dev/null && [ -d "$NPM_TOOLS/node_modules/kubernetes-models" ]; then
	out=$(TMPDIR=$WORK NODE_PATH=$NPM_TOOLS/node_modules node "$ROOT/deploy/kubernetes/validate.cjs" "$K8S" 2>&1) && rc=0 || rc=$?
	echo "$out" | sed 's/^/    /'
	e2e_check "Kubernetes manifests valid against the API schema: types, required fields, no unknown field" \
		eq "$rc:$(grep -c '^ok ' <<<"$out")" "0:3"
	# The validator must catch a misspelt field, or it proves nothing.
	sed 's/hostNetwork: true/hostNetWork: true/' "$K8S" >"$WORK/typo.yaml"
	out=$(TMPDIR=$WORK NODE_PATH=$NPM_TOOLS/node_modules node "$ROOT/deploy/kubernetes/validate.cjs" "$WORK/typo.yaml" 2>&1) && rc=0 || rc=$?
	e2e_check "... and it rejects a misspelt field (hostNetWork)" \
		eq "$rc:$(grep -c "'\"hostNetWork\"' does not exist" <<<"$out")" "1:1"
elif [ "${FS_REQUIRE_ALL:-0}" = 1 ]; then
	e2e_check "Kubernetes API schema check: node and the npm packages under $NPM_TOOLS are installed" false
else
	echo "SKIP: Kubernetes API schema check: node or the npm packages under $NPM_TOOLS missing (scripts/install-deps.sh check)"
fi
$PY - "$K8S" "$WORK/k8s.conf" "$UNIT_CAPS" >"$WORK/k8s-structure.out" 2>&1 <<'EOF' && rc=0 || rc=$?
import sys, yaml
docs = {d["kind"]: d for d in yaml.safe_load_all(open(sys.argv[1])) if d}
ds, cm = docs["DaemonSet"], docs["ConfigMap"]
pod = ds["spec"]["template"]
spec = pod["spec"]
c = spec["containers"][0]
sc = c["securityContext"]
mounts = {m["name"]: m for m in c["volumeMounts"]}
vols = {v["name"]: v for v in spec["volumes"]}
problems = []
def need(cond, what):
    if not cond:
        problems.append(what)
need(spec.get("hostNetwork") is True, "hostNetwork: true")
unit_caps = sorted(c[4:] for c in sys.argv[3].split())
need(sorted(sc["capabilities"]["add"]) == unit_caps, "capabilities add exactly the systemd unit's %s" % unit_caps)
need(sc["capabilities"]["drop"] == ["ALL"], "capabilities drop ALL")
need(not sc.get("privileged") and sc.get("allowPrivilegeEscalation") is False, "not privileged, no escalation")
bpffs = [n for n, v in vols.items() if v.get("hostPath", {}).get("path") == "/sys/fs/bpf"]
need(len(bpffs) == 1 and mounts.get(bpffs[0], {}).get("mountPath") == "/sys/fs/bpf" and
     not mounts[bpffs[0]].get("readOnly"), "node's /sys/fs/bpf mounted read-write at /sys/fs/bpf")
cfgvol = [n for n, v in vols.items() if v.get("configMap", {}).get("name") == cm["metadata"]["name"]]
need(len(cfgvol) == 1 and mounts.get(cfgvol[0], {}).get("mountPath") == "/etc/failsteer", "ConfigMap mounted at /etc/failsteer")
need(cm["metadata"].get("namespace") == ds["metadata"].get("namespace"), "ConfigMap in the DaemonSet's namespace")
need(c["command"][-2:] == ["-c", "/etc/failsteer/failsteer.conf"] and "failsteer.conf" in cm["data"], "runs the ConfigMap's failsteer.conf")
ann = pod["metadata"]["annotations"]
port = [p["containerPort"] for p in c["ports"] if p["name"] == "metrics"]
conf = cm["data"]["failsteer.conf"]
listen = [l.split("=", 1)[1].strip() for l in conf.splitlines() if l.strip().startswith("metrics_listen")]
need(ann.get("prometheus.io/scrape") == "true" and port and ann.get("prometheus.io/port") == str(port[0]) and
     listen and listen[0].endswith(":%d" % port[0]) and not listen[0].startswith("127."),
     "scrape annotations on the metrics port, which the config listens on beyond loopback")
need(ds["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items(), "selector matches the pod labels")
open(sys.argv[2], "w").write(conf)
print("\n".join(problems) or "structure ok")
sys.exit(1 if problems else 0)
EOF
sed 's/^/    /' "$WORK/k8s-structure.out"
e2e_check "DaemonSet: hostNetwork, the unit's capabilities only, bpffs hostPath, ConfigMap, scrape annotations" eq "$rc" 0
e2e_check "the ConfigMap's failsteer.conf passes 'failsteer check'" quiet "$FS" check -c "$WORK/k8s.conf"

# ---- (7) make install, (6) systemd unit -----------------------------------------------
BUILD_ABS=$(cd "$(dirname "$FS")" && pwd)
make_install() { # make install ARGS..., never rebuilding the binary under test
	make -s -C "$ROOT" BUILD="$BUILD_ABS" -o "$BUILD_ABS/failsteer" install "$@" >>"$WORK/install.out" 2>&1
}
e2e_check "make install DESTDIR=\$WORK/root PREFIX=/usr" make_install DESTDIR="$WORK/root" PREFIX=/usr
R=$WORK/root
e2e_check "... installs the binary (/usr/sbin/failsteer, the built one)" cmp "$FS" "$R/usr/sbin/failsteer"
e2e_check "... the commented example config (/etc/failsteer/failsteer.conf.example), which passes 'failsteer check'" \
	quiet "$R/usr/sbin/failsteer" check -c "$R/etc/failsteer/failsteer.conf.example"
e2e_check "... the systemd unit (/usr/lib/systemd/system/failsteer.service) running /usr/sbin/failsteer" \
	grep -qx "ExecStart=/usr/sbin/failsteer run -c /etc/failsteer/failsteer.conf" "$R/usr/lib/systemd/system/failsteer.service"
e2e_check "... and docs/operations.md" test -s "$R/usr/share/doc/failsteer/operations.md"
R2=$WORK/root-default
e2e_check "make install DESTDIR=\$WORK/root-default (default PREFIX=/usr/local)" make_install DESTDIR="$R2"
e2e_check "... the unit runs /usr/local/sbin/failsteer with the config in /etc, where the docs put it" \
	grep -qx "ExecStart=/usr/local/sbin/failsteer run -c /etc/failsteer/failsteer.conf" \
	"$R2/usr/local/lib/systemd/system/failsteer.service"
e2e_check "... and the example config next to it" test -s "$R2/etc/failsteer/failsteer.conf.example"
# systemd-analyze verify needs the unit's ExecStart binary to exist: install for real
# under a prefix in $WORK (the unit's paths follow PREFIX) and verify that unit as is.
E=$WORK/prefix
e2e_check "make install PREFIX=\$WORK/prefix (unit paths follow the prefix)" make_install PREFIX="$E"
IUNIT=$E/lib/systemd/system/failsteer.service
out=$(systemd-analyze verify "$IUNIT" 2>&1) && rc=0 || rc=$?
[ -z "$out" ] || echo "$out" | sed 's/^/    /'
e2e_check "systemd-analyze verify on the installed unit: exit 0, no warning" eq "$rc:$out" "0:"
e2e_check "... the installed unit is deploy/systemd/failsteer.service with only its paths changed" \
	bash -c "diff <(sed -e 's|$E/sbin/|/usr/sbin/|; s|$E/etc/|/etc/|; s|$E/share/doc/|/usr/share/doc/|' '$IUNIT') '$UNIT'"
e2e_check "unit: Type=simple, Restart=on-failure, ExecReload sends SIGHUP, no CAP_SYS_ADMIN" \
	eq "$(grep -cx -e 'Type=simple' -e 'Restart=on-failure' "$UNIT"):$RELOAD_CMD:$(grep -cw CAP_SYS_ADMIN <<<"$UNIT_CAPS")" \
	"2:/bin/kill -HUP \$MAINPID:0"
# setpriv's form of a capability list: -all,+bpf,+perfmon,...
setpriv_caps() { local s=-all c; for c in "$@"; do c=${c#CAP_}; s="$s,+${c,,}"; done; echo "$s"; }

# ---- the live system ------------------------------------------------------------------
topo_up "$P" off
start_site "$P" primary
start_site "$P" backup
METRICS_LISTEN=127.0.0.1:$METRICS_PORT e2e_config

# The daemon as systemd would run it: the unit's bounding set and no_new_privs.
# (nsenter and setpriv exec, so $! is failsteer itself, as $MAINPID would be.)
# shellcheck disable=SC2086 # the unit's list is space separated
nsenter --net="/run/netns/${P}edge" setpriv --no-new-privs --bounding-set="$(setpriv_caps $UNIT_CAPS)" "$FS" run -c "$CFG" >>"$DLOG" 2>&1 &
E2E_DAEMON_PID=$!
scrape() { ip netns exec "${P}edge" curl -sf -m 3 "http://127.0.0.1:$METRICS_PORT/metrics"; }
daemon_serving() { kill -0 "$E2E_DAEMON_PID" 2>/dev/null && scrape | grep -q '^failsteer_daemon_ticks_total [1-9]'; }
e2e_check "failsteer runs with only the unit's capabilities ($UNIT_CAPS) and serves metrics" \
	wait_until 5 daemon_serving

cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $ROOT/deploy/prometheus/alerts.yml
scrape_configs:
  - job_name: failsteer
    static_configs:
      - targets: ["127.0.0.1:$METRICS_PORT"]
EOF
ip netns exec "${P}edge" prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
	--web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn >"$WORK/prometheus.out" 2>&1 &
prom_ready() { ip netns exec "${P}edge" curl -sf -m 2 "http://127.0.0.1:$PROM_PORT/-/ready" >/dev/null; }
# pq PROMQL: the instant query's result as JSON lines, one per series, via the HTTP API
pq() {
	ip netns exec "${P}edge" curl -sf -m 3 "http://127.0.0.1:$PROM_PORT/api/v1/query" \
		--data-urlencode "query=$1" | jq -c '.data.result[]'
}
prom_true() { [ -n "$(pq "$1" 2>/dev/null)" ]; } # PROMQL: status 0 if it returns any series
e2e_check "Prometheus (Debian's) starts in the edge namespace" wait_until 20 prom_ready
n_rules=$(ip netns exec "${P}edge" curl -sf -m 3 "http://127.0.0.1:$PROM_PORT/api/v1/rules" |
	jq '[.data.groups[].rules[] | select(.health == "ok" or .health == "unknown")] | length' || echo 0)
e2e_check "... and has loaded the $(grep -c -- '- alert:' "$ROOT/deploy/prometheus/alerts.yml") alerts of deploy/prometheus/alerts.yml" \
	eq "$n_rules" "$(grep -c -- '- alert:' "$ROOT/deploy/prometheus/alerts.yml")"
e2e_check "Prometheus scrapes failsteer (up == 1) and sees the primary active" \
	wait_until 10 prom_true 'up{job="failsteer"} == 1 and on() failsteer_service_active_backend{service="classifier"} == 0'

# A long-lived connection among them keeps entries in the flow table for the bpftool
# commands (short connections leave it as they close); reopened on the backup after the fault.
load_start "${P}cli" load "$PRI4:$SVC_PORT" 40 16 --long-lived 1 --long-interval-ms 200
sleep 2

# ---- (1) promtool check metrics on a live scrape (with latency observations in it)
scrape >"$WORK/scrape.txt" || true
out=$(promtool check metrics <"$WORK/scrape.txt" 2>&1) && rc=0 || rc=$?
[ -z "$out" ] || echo "$out" | sed 's/^/    /'
e2e_check "promtool check metrics passes on a live scrape, no lint warning" eq "$rc:$out" "0:"
e2e_check "... which has connect latency observations" \
	grep -Eq '^failsteer_backend_connect_latency_seconds_count\{service="classifier",backend="198.18.2.10:8080",site="0"\} [1-9]' "$WORK/scrape.txt"
e2e_check "... and whether automatic failback can come (on the primary: it can)" \
	grep -q '^failsteer_service_failback_capped{service="classifier"} 0$' "$WORK/scrape.txt"
# Every metric the daemon exports is explained in the docs.
undocumented=$(grep -v '^#' "$WORK/scrape.txt" | grep -o '^failsteer_[a-z_]*' | sed -E 's/_(bucket|sum|count)$//' |
	sort -u | while read -r m; do grep -q "\`$m\`" "$DOCS" || echo "$m"; done)
e2e_check "every exported metric is explained in docs/operations.md${undocumented:+ (missing: $undocumented)}" eq "$undocumented" ""

# ---- (1b) a hostile scraper (idle and half-sent requests filling every connection slot)
# cannot stall the detector: ticks go on while /metrics is jammed, and it recovers after.
ticks() { scrape | awk '$1 == "failsteer_daemon_ticks_total" { print $2 }'; }
t0=$(ticks)
ip netns exec "${P}edge" $PY - "$METRICS_PORT" <<'PY' >"$WORK/hostile.out" 2>&1
import socket, sys, time
conns = []
for i in range(40):
    try:
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
        if i % 2:
            s.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never finished
        conns.append(s)
    except OSError:
        pass
time.sleep(3)
jammed = 0
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
    s.settimeout(1)
    s.send(b"GET /metrics HTTP/1.0\r\n\r\n")
    jammed = 0 if s.recv(64) else 1
except OSError:
    jammed = 1
print(f"held {len(conns)} connections; a scrape while jammed got {'nothing' if jammed else 'an answer'}")
PY
t1=$(ticks)
report "ticks before the hostile scraper: ${t0:-none}, after holding 40 connections for 3 s: ${t1:-none}; $(cat "$WORK/hostile.out")"
e2e_check "a hostile scraper holding every metrics connection does not stall the detector (>= 25 ticks in 3 s)" \
	ge "$(( ${t1:-0} - ${t0:-0} ))" 25
e2e_check "... and /metrics answers again once it is gone" wait_until 5 daemon_serving
healthz() { ip netns exec "${P}edge" curl -s -m 3 -o "$WORK/healthz.out" -w '%{http_code}' "http://127.0.0.1:$METRICS_PORT/healthz"; }
e2e_check "/healthz (the liveness probe) answers 200 while the detector ticks" eq "$(healthz):$(cut -c1-3 "$WORK/healthz.out")" "200:ok:"

# ---- (2) a reset failover seen through Prometheus
T_FAULT=$(date +%s.%N)
"$ROOT/scripts/fault.sh" "$P" reset >/dev/null
e2e_check "Prometheus sees failsteer_service_active_backend go to 1 (within 10 s of the reset)" \
	wait_until 10 prom_true 'failsteer_service_active_backend{service="classifier"} == 1'
report "reset to failover seen in Prometheus: $($PY -c "import sys,time; print('%.1f s' % (time.time() - float(sys.argv[1])))" "$T_FAULT")"
e2e_check "Prometheus sees failsteer_service_failovers_total increase" \
	wait_until 5 prom_true 'increase(failsteer_service_failovers_total{service="classifier"}[2m]) > 0'
e2e_check "alert FailsteerServiceFailedOver fires in Prometheus" \
	wait_until 8 prom_true 'ALERTS{alertname="FailsteerServiceFailedOver",alertstate="firing",service="classifier"}'

# ---- the dashboard's queries against this Prometheus (Grafana itself is not run here)
$PY - "$DASH" >"$WORK/dash-queries.txt" 2>"$WORK/dash.out" <<'EOF' && rc=0 || rc=$?
import json, sys
d = json.load(open(sys.argv[1]))
assert d["uid"] and d["title"] and d["schemaVersion"] >= 36
names = {v["name"] for v in d["templating"]["list"]}
assert {"datasource", "instance", "service"} <= names, names
ids = set()
for p in d["panels"]:
    assert p["id"] not in ids, "duplicate panel id %s" % p["id"]
    ids.add(p["id"])
    g = p["gridPos"]
    assert g["x"] + g["w"] <= 24, p["title"]
    if p["type"] == "row":
        continue
    assert p["datasource"]["uid"] == "${datasource}", p["title"]
    assert p["targets"] and p["description"], p["title"]
    for t in p["targets"]:
        # Grafana makes $__rate_interval at least 4 scrape intervals; 15 s (15 scrapes here)
        # leaves room for a scrape or two missed on this loaded 2-core machine.
        e = (t["expr"].replace("$__rate_interval", "15s").replace("$__range", "1m")
             .replace("$instance", ".*").replace("$service", ".*"))
        assert "$" not in e, e
        print(json.dumps({"panel": p["title"], "expr": e}))
titles = {p["title"] for p in d["panels"]}
for want in ("Active backend per service", "P(down) per backend", "Connection attempts vs failures",
             "Connect latency (SYN to SYN-ACK)", "Failovers and failbacks"):
    assert want in titles, want
EOF
e2e_check "dashboard JSON: structure, variables, the five required panels" eq "$rc" 0
nq=0 bad=""
while read -r line; do
	expr=$(jq -r .expr <<<"$line")
	nq=$((nq + 1))
	n=$(pq "$expr" | wc -l)
	[ "$n" -gt 0 ] || bad="$bad | $(jq -r .panel <<<"$line"): $expr"
done <"$WORK/dash-queries.txt"
[ -z "$bad" ] || echo "    queries with no result or an error:$bad"
e2e_check "all $nq dashboard queries are valid PromQL and return series from the live Prometheus" \
	eq "$nq:$bad" "$(wc -l <"$WORK/dash-queries.txt"):"
e2e_check "... and at least 20 of them" ge "$nq" 20

# The stored series, scrape by scrape: 0 before the fault, then 1.
# Steps end now (after the instant query saw 1), one per second over the last minute.
END=$(date +%s.%N)
ip netns exec "${P}edge" curl -sf -m 3 "http://127.0.0.1:$PROM_PORT/api/v1/query_range" \
	--data-urlencode 'query=failsteer_service_active_backend{service="classifier"}' \
	--data-urlencode "start=$((${END%.*} - 60)).${END#*.}" --data-urlencode "end=$END" --data-urlencode step=1 \
	>"$WORK/range.json" || true
series=$(jq -r '[.data.result[0].values[][1]] | join(" ")' "$WORK/range.json" 2>/dev/null || true)
report "active backend per second as stored: $series"
e2e_check "the stored series of the active backend goes 0 -> 1" \
	"$PY" -c 'import re,sys; sys.exit(0 if re.fullmatch(r"(0 )+(1 ?)+", sys.argv[1]) else 1)' "$series"

# ---- (4) the bpftool commands of docs/operations.md, on the live pins (on the backup now)
IF=${P}e0
# The docs' jq program that decodes the services map, taken from the docs themselves.
FS_SERVICES_JQ=$(sed -n "s/^FS_SERVICES_JQ='\(.*\)'\$/\1/p" "$DOCS")
# Each command is written in the docs exactly as here (PIN and IF set as in the docs).
bt() { # COMMAND: runs it (in the edge namespace) into $WORK/bt.out, status of the command
	grep -qF -- "$1" "$DOCS" || { echo "    not in docs/operations.md: $1"; return 1; }
	edge env PIN="$PIN" IF="$IF" FS_SERVICES_JQ="$FS_SERVICES_JQ" bash -c "$1" >"$WORK/bt.out" 2>&1
}
bt_has() { # COMMAND PATTERN...: the command runs and its output matches every pattern
	local f
	bt "$1" || { echo "    failed: $1"; sed 's/^/      /' "$WORK/bt.out" | head -n 5; return 1; }
	shift
	for f in "$@"; do
		grep -q -- "$f" "$WORK/bt.out" && continue
		echo "    no match for $f in:"
		head -c 800 "$WORK/bt.out" | sed 's/^/      /'
		return 1
	done
}
btc() { # DESCRIPTION COMMAND PATTERN...
	local what=$1
	shift
	e2e_check "inspection: $what: $1" bt_has "$@"
}
btc "pinned ingress program" 'bpftool prog show pinned $PIN/prog_tc_ingress' "sched_cls  name fs_tc_ingress" "btf_id"
btc "pinned egress program" 'bpftool prog show pinned $PIN/prog_tc_egress' "sched_cls  name fs_tc_egress"
btc "the pinned maps" 'ls $PIN' services flows backend_stats backend_traffic backend_pending global_stats service_ctl service_state backend_model daemon_state
# (tc_attach = auto on a kernel with tcx: links, pinned.)
ING_PROG=$(pinned_prog)
e2e_check "the pinned ingress program has an id" test -n "$ING_PROG"
if [ "$(auto_kind)" = tcx ]; then
	btc "the tcx links, pinned per interface and direction" 'ls $PIN' "^link_tc_ingress_[0-9]" "^link_tc_egress_[0-9]"
	btc "the interface's ingress link runs the pinned program" \
		'bpftool link show pinned $PIN/link_tc_ingress_$(ip -o link show dev $IF | cut -d: -f1)' "type 11  prog $ING_PROG\\b"
else
	report "this kernel has no tcx: the tcx inspection commands are not run"
fi
btc "services (on the backup)" 'bpftool map dump pinned $PIN/services' '"svc_id": 0' '"n_backends": 2' '"active": 1' \
	'"flags"' '"connect_timeout_ms": 300' '"backend_ids": \[0,1,' '"backends"' '"backend_ifindex"' '"addr"' '"port": 36895' '"family": 4'
btc "services, decoded by the docs' jq program" \
	"bpftool map dump pinned \$PIN/services | jq -r \"\$FS_SERVICES_JQ\"" \
	"^198.18.2.10:8080 svc_id 0 active 1 198.18.3.10:8080 backends 198.18.2.10:8080 198.18.3.10:8080$"
btc "one service by its address" \
	'bpftool map lookup pinned $PIN/services key hex c6 12 02 0a 00 00 00 00 00 00 00 00 00 00 00 00 1f 90 04 00' '"active": 1'
btc "service_state (one failover, name)" 'bpftool map lookup pinned $PIN/service_state key 0 0 0 0' \
	'"failovers": 1' '"failbacks": 0' '"backoff_level"' '"all_down": 0' '"up_since_ms"' '"last_failback_ms"' \
	'"last_switch_ms": [1-9]' '"name": "classifier"'
btc "the daemon's heartbeat" 'bpftool map lookup pinned $PIN/daemon_state key 0 0 0 0' \
	"\"pid\": $E2E_DAEMON_PID," '"tick_ms": 100' '"flags": 0' '"started_ms": [1-9]' '"last_tick_mono_ms": [1-9]' '"ticks": [1-9]'
btc "service_ctl (automatic)" 'bpftool map lookup pinned $PIN/service_ctl key 0 0 0 0' '"mode": 0' '"forced_idx"' '"changed_ms"'
btc "backend_stats of the primary (per CPU)" 'bpftool map lookup pinned $PIN/backend_stats key 0 0 0 0' \
	'"cpu": 0' '"attempts"' '"syn_retrans"' '"established"' '"resets"' '"resets_connect"' '"timeouts"' '"icmp_errors"' \
	'"retried"'
btc "backend_traffic of the backup (per CPU)" 'bpftool map lookup pinned $PIN/backend_traffic key 1 0 0 0' \
	'"cpu": 0' '"pkts_to"' '"bytes_to"' '"pkts_from"' '"bytes_from"' '"latency_sum_us"' '"latency_hist"'
btc "backend_traffic summed over CPUs: the backup answered" \
	"bpftool map lookup pinned \$PIN/backend_traffic key 1 0 0 0 | jq '[.values[].value.pkts_from] | add'" '^[1-9][0-9]*$'
btc "backend_stats summed over CPUs: the primary refused connections" \
	"bpftool map lookup pinned \$PIN/backend_stats key 0 0 0 0 | jq '[.values[].value.resets_connect] | add'" '^[1-9][0-9]*$'
btc "backend_pending of the primary" 'bpftool map lookup pinned $PIN/backend_pending key 0 0 0 0' '"pending": [01]'
btc "backend_model of the primary" 'bpftool map lookup pinned $PIN/backend_model key 0 0 0 0' \
	'"p_down_ppb": [1-9]' '"fail_up_ppb"' '"trans_ppb"' '"counts_milli"' '"up_attempts_milli"' '"up_failures_milli"' \
	'"mtbf_ms"' '"mttr_ms"' '"availability_ppb"' '"evidence_ticks"' '"rate_milli"' '"prev"'
btc "global_stats" 'bpftool map lookup pinned $PIN/global_stats key 0 0 0 0' \
	'"flows_created"' '"flows_deleted"' '"flow_misses"' '"fib_failures"' '"icmp_unmatched"' '"rst_rejected"' '"retry_failures"'
btc "connections in the flow table" "bpftool map dump pinned \$PIN/flows | grep -c '\"dir\": 1'" '^[1-9][0-9]*$'
btc "flows" 'bpftool map dump pinned $PIN/flows' '"src"' '"dst"' '"sport"' '"dport"' '"syn_ns"' '"last_ns"' '"nat"' \
	'"backend_id"' '"client_isn"' '"snd_nxt"' '"dir": 1' '"dir": 2' '"state": 2' '"backend_idx": 1' '"tried"' '"oif"'
# The same data path as clsact filters (a reload with tc_attach = clsact, under the unit's
# capabilities): what bpftool net and tc show of them.
TC_ATTACH=clsact METRICS_LISTEN=127.0.0.1:$METRICS_PORT e2e_config
kill -HUP "$E2E_DAEMON_PID"
e2e_check "reload with tc_attach = clsact, without CAP_SYS_ADMIN: done" \
	wait_until 5 grep -q "reloaded $CFG" "$DLOG"
btc "clsact: programs on every interface" 'bpftool net show' \
	"${P}e0(.*clsact/ingress fs_tc_ingress" "${P}e0(.*clsact/egress fs_tc_egress" "${P}e2(.*clsact/egress fs_tc_egress"
btc "clsact: the TC filter, handle 0xf5 prio 0xf5" 'tc filter show dev $IF ingress' "pref 245 bpf" "handle 0xf5 fs_tc_ingress" "direct-action"
btc "clsact: the egress TC filter" 'tc filter show dev $IF egress' "pref 245 bpf" "handle 0xf5 fs_tc_egress"
e2e_check "clsact: no tcx link left on the hooks, nor pinned" eq "$(hooked "${P}e0"):$(link_pins)" "clsact $(pinned_prog):0"

# ---- (5) failsteer status, --json, --watch
out=$(fsctl status 2>&1) || true
e2e_check "status: the table shows the service on backend 1 after one failover" \
	grep -q "^service classifier  $PRI4:$SVC_PORT  active 1 ($BAK4:$SVC_PORT)  auto  failovers 1" <<<"$out"
lines_match() { # TEXT PATTERN...: every extended regex matches a line of TEXT
	local text=$1 f
	shift
	for f in "$@"; do grep -Eq -- "$f" <<<"$text" || return 1; done
}
e2e_check "status: one line per backend, the active one starred, with P(down)" \
	lines_match "$out" 'P\(down\)' "^  \*1 $BAK4:$SVC_PORT " "^   0 $PRI4:$SVC_PORT "
fsctl status --json >"$WORK/status.json" 2>&1 || true
e2e_check "status --json: valid JSON with the fields (active 1, failovers 1, P(down), transitions, totals, P(up) ceiling)" \
	jq -e '.services[0] | .name == "classifier" and .active == 1 and .mode == "auto" and .failovers == 1
		and (.backends | length == 2) and .backends[0].p_down > 0.5 and (.backends[0].transitions | has("up_down"))
		and .backends[0].totals.connect_refused > 0 and .backends[1].totals.established > 0
		and (.backends[0] | has("mtbf_s") and has("mttr_s") and has("availability") and has("rates"))
		and .failback_capped == false and .backends[0].p_up_ceiling > 0.99 and .backends[0].p_up_ceiling < 1' \
	"$WORK/status.json"
timeout 2.5 nsenter --net="/run/netns/${P}edge" "$FS" status --watch -p "$PIN" >"$WORK/watch.out" 2>&1 || true
refreshes=$(grep -o $'\033\\[H\033\\[2J' "$WORK/watch.out" | wc -l)
tables=$(grep -c 'service classifier  ' "$WORK/watch.out" || true)
report "status --watch in 2.5 s: $refreshes screen refreshes, $tables tables"
e2e_check "status --watch refreshes the table every second (>= 2 in 2.5 s)" \
	eq "$([ "$refreshes" -ge 2 ] && [ "$tables" -ge 2 ] && echo yes)" yes

# ---- failback, seen through Prometheus; the unit's ExecReload on the live daemon
"$ROOT/scripts/fault.sh" "$P" repair >/dev/null
e2e_check "after repair Prometheus sees the failback: active 0, failbacks_total increased" \
	wait_until 15 prom_true 'failsteer_service_active_backend{service="classifier"} == 0
		and on(service) increase(failsteer_service_failbacks_total{service="classifier"}[1m]) > 0'
reloads() { grep -c "reloaded $CFG" "$DLOG" || true; }
exec_reload() { # the unit's ExecReload with $MAINPID the daemon's pid, as systemd runs it
	local before MAINPID=$E2E_DAEMON_PID
	[ "$(cat "/proc/$MAINPID/comm")" = failsteer ] || return 1
	before=$(reloads)
	eval "${RELOAD_CMD//\$MAINPID/$MAINPID}" || return 1
	wait_until 5 eval '[ "$(reloads)" -gt "$before" ]'
}
e2e_check "the unit's ExecReload ($RELOAD_CMD) reloads the live daemon" exec_reload
load_wait
report "load: $(tail -n 1 "$WORK/load.out" 2>/dev/null)"

# ---- the unit's capabilities: a SIGTERM stop is clean, each capability is needed, and
# the daemon opens sockets only of the unit's RestrictAddressFamilies.
kill -TERM "$E2E_DAEMON_PID" 2>/dev/null || true
rc=0
# Bounded: a daemon that ignores SIGTERM is a failure here, not a hung test.
if wait_until 10 bash -c "! kill -0 $E2E_DAEMON_PID 2>/dev/null"; then
	wait "$E2E_DAEMON_PID" || rc=$?
else
	rc="still running 10 s after SIGTERM"
	kill -KILL "$E2E_DAEMON_PID" 2>/dev/null || true
	wait "$E2E_DAEMON_PID" 2>/dev/null || true
fi
E2E_DAEMON_PID=""
e2e_check "SIGTERM stops the daemon with exit 0 (no restart under Restart=on-failure)" eq "$rc" 0
e2e_check "status says the daemon stopped (not silent)" \
	eq "$(fsctl status --json | jq -r .daemon.state):$(fsctl status | grep -c '^daemon pid [0-9]*  STOPPED')" "stopped:1"
out=$("$FS" run -c "$WORK/missing.conf" 2>&1) && rc=0 || rc=$?
e2e_check "a configuration error exits 2 (RestartPreventExitStatus=2)" eq "$rc" 2
for cap in $UNIT_CAPS; do
	# shellcheck disable=SC2086
	others=$(tr ' ' '\n' <<<"$UNIT_CAPS" | grep -vx "$cap" | tr '\n' ' ')
	# shellcheck disable=SC2086
	out=$(timeout 10 nsenter --net="/run/netns/${P}edge" setpriv --no-new-privs \
		--bounding-set="$(setpriv_caps $others)" "$FS" run -c "$CFG" 2>&1) && rc=0 || rc=$?
	why=$(grep '^failsteer: ' <<<"$out" | tail -n 1)
	e2e_check "without $cap the daemon fails (exit 1: ${why:-no error message})" \
		eq "$rc:$(grep -c 'failsteer: .*[Oo]peration not permitted\|failsteer: .*[Pp]ermission denied' <<<"$why")" "1:1"
done
n_started=$(grep -c "metrics on http" "$DLOG")
# shellcheck disable=SC2086
nsenter --net="/run/netns/${P}edge" setpriv --no-new-privs --bounding-set="$(setpriv_caps $UNIT_CAPS)" \
	strace -f -qq -e trace=socket -o "$WORK/strace.txt" "$FS" run -c "$CFG" >>"$DLOG" 2>&1 &
ST_PID=$!
started() { [ "$(grep -c "metrics on http" "$DLOG")" -gt "$1" ]; }
if wait_until 8 started "$n_started"; then
	sleep 1 # a tick with probes
	scrape >/dev/null || true
fi
kill -TERM "$(pgrep -P "$ST_PID" -x failsteer || echo "$ST_PID")" 2>/dev/null || true
wait_until 5 bash -c "! kill -0 $ST_PID 2>/dev/null" || kill -KILL "$ST_PID" 2>/dev/null || true
wait "$ST_PID" 2>/dev/null || true
families=$(grep -o 'socket(AF_[A-Z0-9]*' "$WORK/strace.txt" | sed 's/socket(//' | sort -u | tr '\n' ' ')
report "socket families opened by the daemon (attach, probes, routes, metrics): $families"
outside=$(for f in $families; do grep -qw "$f" <<<"$UNIT_AF" || echo "$f"; done)
e2e_check "the daemon only opens sockets of RestrictAddressFamilies=$UNIT_AF" \
	eq "$([ -n "$families" ] && echo some):$outside" "some:"

echo "== test_ops: $(($(date +%s) - T0)) s"
e2e_finish
