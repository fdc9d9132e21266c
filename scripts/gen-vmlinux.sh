#!/bin/sh
# Regenerate vmlinux-headers/<arch>/vmlinux.h from the running kernel's BTF.
# Usage: scripts/gen-vmlinux.sh [BTF_FILE]   (default /sys/kernel/btf/vmlinux)
set -eu
btf=${1:-/sys/kernel/btf/vmlinux}
arch=$(uname -m)
out="$(dirname "$0")/../vmlinux-headers/$arch/vmlinux.h"
[ -r "$btf" ] || { echo "gen-vmlinux: $btf not readable (kernel built without BTF?)" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
bpftool btf dump file "$btf" format c > "$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out from $btf ($(uname -r))"
