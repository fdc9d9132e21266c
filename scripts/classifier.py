#!/usr/bin/python3
"""classifier.py - the protected service of the failsteer end-to-end tests.

A deterministic stand-in for an image-classification service, but a real
threaded HTTP/1.1 server (keep-alive, reads every request in full):

  POST /classify  (body = image bytes, Content-Length required)
        -> 200 {"label": L, "site": NAME, "bytes": N}   L derived from the bytes
  GET  /health    -> 200 {"site": NAME}
  GET  /pad?bytes=N -> 200 {"site": NAME, "pad": N bytes}   a large answer (path MTU tests)

Usage:
  classifier.py --site NAME --listen ADDR:PORT [--listen [V6ADDR]:PORT ...]
                [--reset-fraction F] [--pidfile FILE]

--reset-fraction F aborts that random fraction of requests with a TCP RST
(SO_LINGER 0, close) instead of answering. The pidfile is written once every
socket listens, so it doubles as a readiness signal. SIGTERM/SIGINT -> clean exit.
"""
import argparse
import hashlib
import http.server
import json
import os
import random
import signal
import socket
import socketserver
import struct
import sys
import threading

LABELS = ("cat", "dog", "car", "tree", "bird", "boat")
MAX_BODY = 16 << 20


def classify(data: bytes) -> str:
    return LABELS[hashlib.sha256(data).digest()[0] % len(LABELS)]


def parse_listen(spec: str):
    """'1.2.3.4:80' or '[2001:db8::1]:80' -> (family, host, port)."""
    if spec.startswith("["):
        host, sep, port = spec[1:].partition("]:")
        if not sep:
            raise argparse.ArgumentTypeError(f"bad listen address {spec!r}")
        return socket.AF_INET6, host, int(port)
    host, sep, port = spec.rpartition(":")
    if not sep or ":" in host:
        raise argparse.ArgumentTypeError(f"bad listen address {spec!r} (IPv6 as [addr]:port)")
    return socket.AF_INET, host, int(port)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless the client says close
    server_version = "classifier/1"
    timeout = 30  # idle keep-alive connections are dropped after this

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def _reply(self, code, obj):
        body = (json.dumps(obj) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _maybe_reset(self) -> bool:
        if self.server.reset_fraction <= 0 or random.random() >= self.server.reset_fraction:
            return False
        sock = self.connection
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # detach() so the fd is closed exactly once, right now (close() would
            # wait for rfile/wfile, and the server would send a FIN first).
            os.close(sock.detach())
        except OSError:
            pass
        self.close_connection = True
        return True

    def do_GET(self):
        if self.path in ("/health", "/"):
            if not self._maybe_reset():
                self._reply(200, {"site": self.server.site})
        elif self.path.startswith("/pad?bytes="):
            n = self.path[len("/pad?bytes="):]
            if not n.isdigit() or int(n) > MAX_BODY:
                self._reply(400, {"error": "bytes must be 0..%d" % MAX_BODY})
            else:
                self._reply(200, {"site": self.server.site, "pad": "x" * int(n)})
        else:
            self._reply(404, {"error": "not found"})

    def do_POST(self):
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            self._reply(411, {"error": "Content-Length required"})
            return
        n = int(length)
        if n > MAX_BODY:
            self.close_connection = True
            self._reply(413, {"error": "too large"})
            return
        data = self.rfile.read(n)
        if len(data) != n:  # client went away mid-body
            self.close_connection = True
            return
        if self.path != "/classify":
            self._reply(404, {"error": "not found"})
            return
        if self._maybe_reset():
            return
        self._reply(200, {"label": classify(data), "site": self.server.site, "bytes": n})


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, family, addr, site, reset_fraction):
        self.address_family = family
        self.site = site
        self.reset_fraction = reset_fraction
        super().__init__(addr, Handler)

    def server_bind(self):
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        # Skip HTTPServer.server_bind: its getfqdn() may block on DNS in a netns.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        pass  # broken connections are normal here; stay quiet


def main():
    ap = argparse.ArgumentParser(description="failsteer test classification service")
    ap.add_argument("--site", required=True)
    ap.add_argument("--listen", action="append", type=parse_listen, required=True,
                    help="ADDR:PORT or [V6ADDR]:PORT, repeatable")
    ap.add_argument("--reset-fraction", type=float, default=0.0)
    ap.add_argument("--pidfile")
    args = ap.parse_args()
    if not 0.0 <= args.reset_fraction <= 1.0:
        ap.error("--reset-fraction must be in [0, 1]")

    servers = []
    try:
        for family, host, port in args.listen:
            servers.append(Server(family, (host, port), args.site, args.reset_fraction))
    except OSError as e:
        print(f"classifier: cannot listen: {e}", file=sys.stderr)
        return 1

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    for srv in servers:
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()

    if args.pidfile:
        tmp = f"{args.pidfile}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(tmp, args.pidfile)
    print(f"classifier: site {args.site} pid {os.getpid()} listening on "
          + " ".join(f"{h}:{p}" for _, h, p in args.listen), file=sys.stderr, flush=True)

    while not stop.wait(1.0):
        pass
    for srv in servers:
        srv.shutdown()
        srv.server_close()
    if args.pidfile:
        try:
            with open(args.pidfile) as f:
                if f.read().strip() == str(os.getpid()):
                    os.unlink(args.pidfile)
        except OSError:
            pass
    print(f"classifier: site {args.site} stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
