#!/usr/bin/python3
"""Prints the ids of the BPF programs on an interface's TC hook, as the kernel has them:
"tcx ID..." (its tcx links, Linux 6.6+) and "clsact ID..." (the filter at failsteer's handle
and priority, 0xf5). Run in the interface's network namespace.

    hook_progs.py DEV ingress|egress
    hook_progs.py --has-tcx      (exit 0 if the kernel has tcx, 1 if not)

bpftool 7.1 (Debian 12) predates tcx: it lists neither the hook nor its links' devices, so
the tests ask the kernel themselves (BPF_PROG_QUERY, the syscall's own layout)."""
import ctypes
import platform
import re
import socket
import struct
import subprocess
import sys

BPF_PROG_QUERY = 16
TCX_ATTACH = {"ingress": 46, "egress": 47}
NR_BPF = {"x86_64": 321, "aarch64": 280}


def tcx_progs(ifindex, hook):
    ids = (ctypes.c_uint32 * 64)()
    # union bpf_attr's query: target_ifindex, attach_type, query_flags, attach_flags,
    # prog_ids (u64), prog_cnt, pad, prog_attach_flags, link_ids, link_attach_flags, revision.
    attr = ctypes.create_string_buffer(struct.pack(
        "IIIIQII4Q", ifindex, TCX_ATTACH[hook], 0, 0, ctypes.addressof(ids), 64, 0, 0, 0, 0, 0))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    if libc.syscall(ctypes.c_long(NR_BPF[platform.machine()]), ctypes.c_long(BPF_PROG_QUERY),
                    attr, ctypes.c_uint(len(attr.raw) - 1)) < 0:
        return None  # no tcx in this kernel (EINVAL)
    count = struct.unpack_from("I", attr.raw, 24)[0]
    return [ids[i] for i in range(min(count, 64))]


def clsact_progs(dev, hook):
    out = subprocess.run(["tc", "filter", "show", "dev", dev, hook], capture_output=True,
                         text=True, check=False).stdout
    return [int(m) for m in re.findall(r"handle 0xf5 .* id (\d+)", out)]


def main():
    if sys.argv[1] == "--has-tcx":
        sys.exit(0 if tcx_progs(1, "ingress") is not None else 1)  # lo is 1 in every namespace
    dev, hook = sys.argv[1], sys.argv[2]
    ifindex = socket.if_nametoindex(dev)
    print("tcx", *(tcx_progs(ifindex, hook) or []))
    print("clsact", *clsact_progs(dev, hook))


if __name__ == "__main__":
    main()
