#!/usr/bin/python3
"""loadgen.py - load client of the failsteer end-to-end tests.

Opens NEW connections at a steady rate (absolute schedule, no drift), each
sending one POST /classify and reading the whole answer; plus K long-lived
keep-alive connections sending a request every --long-interval-ms. A broken
long-lived connection is logged as a failed `long` request and reopened at its
next tick (the reconnect attempt is logged with kind `reopen`).

Usage:
  loadgen.py --target ADDR:PORT|[V6ADDR]:PORT --rate N --duration S
             [--long-lived K] [--long-interval-ms 200] [--timeout 3]
             [--log FILE] [--live] [--image-bytes 2048] [--seed 1]
             [--sites primary,backup]

Log (tab-separated, header first, flushed every 0.5 s), one line per request:
  t_send  t_done  kind  conn  outcome  site  latency_ms  connect_ms
  t_send/t_done: time.time() wall clock, 6 decimals (compare with `date +%s.%N`)
  kind:    new | long | reopen   (reopen = reconnect of a long-lived conn, not a request)
  conn:    n<seq> for new connections, l<index>.<generation> for long-lived ones
  outcome: ok | reset | refused | timeout | error
  site:    "site" of the JSON answer, "-" if none
The timeout covers connect + full response. --live prints one line per second
(`t=3s ok=52 backup=0 primary=52 failed=0`, sites of --sites always shown, others
once seen; failures broken down by outcome); a summary line ends the run.
"""
import argparse
import asyncio
import collections
import errno
import json
import random
import resource
import sys
import time

OUTCOMES = ("ok", "reset", "refused", "timeout", "error")


class BadResponse(Exception):
    pass


def parse_target(spec):
    if spec.startswith("["):
        host, sep, port = spec[1:].partition("]:")
    else:
        host, sep, port = spec.rpartition(":")
        if ":" in host:
            raise SystemExit(f"loadgen: IPv6 target must be [addr]:port, got {spec!r}")
    if not sep or not port.isdigit():
        raise SystemExit(f"loadgen: bad target {spec!r}")
    return host, int(port)


def classify_exc(e):
    if isinstance(e, asyncio.TimeoutError):
        return "timeout"
    if isinstance(e, ConnectionRefusedError):
        return "refused"
    if isinstance(e, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return "reset"
    if isinstance(e, OSError) and e.errno == errno.ETIMEDOUT:
        return "timeout"
    return "error"


class Stats:
    """Per-second (--live) and whole-run counters."""

    def __init__(self, sites=()):
        self.total = collections.Counter()
        self.sites = collections.Counter()
        self.win = collections.Counter()
        self.win_sites = collections.Counter()
        self.seen_sites = set(sites)  # always shown, even at 0

    def add(self, outcome, site):
        for c in (self.total, self.win):
            c[outcome] += 1
        if outcome == "ok":
            self.sites[site] += 1
            self.win_sites[site] += 1
            self.seen_sites.add(site)

    @staticmethod
    def _fmt(counts, sites, seen):
        failed = sum(v for k, v in counts.items() if k != "ok")
        s = f"ok={counts['ok']} " + "".join(f"{n}={sites[n]} " for n in sorted(seen))
        s += f"failed={failed}"
        if failed:
            s += " (" + " ".join(f"{k}={counts[k]}" for k in OUTCOMES[1:] if counts[k]) + ")"
        return s

    def live_line(self, t):
        line = f"t={t}s " + self._fmt(self.win, self.win_sites, self.seen_sites)
        self.win.clear()
        self.win_sites.clear()
        return line

    def summary(self):
        return f"total={sum(self.total.values())} " + self._fmt(self.total, self.sites, self.seen_sites)


class LoadGen:
    def __init__(self, a):
        self.a = a
        self.host, self.port = parse_target(a.target)
        self.body = random.Random(a.seed).randbytes(a.image_bytes)
        hosthdr = f"[{self.host}]" if ":" in self.host else self.host
        head = (f"POST /classify HTTP/1.1\r\nHost: {hosthdr}:{self.port}\r\n"
                f"Content-Type: application/octet-stream\r\nContent-Length: {len(self.body)}\r\n")
        self.req_close = (head + "Connection: close\r\n\r\n").encode() + self.body
        self.req_keep = (head + "Connection: keep-alive\r\n\r\n").encode() + self.body
        self.logf = open(a.log, "w") if a.log else None
        self.logbuf = []
        self.stats = Stats(s for s in a.sites.split(",") if s)
        self.inflight = set()
        if self.logf:
            self.logf.write("t_send\tt_done\tkind\tconn\toutcome\tsite\tlatency_ms\tconnect_ms\n")
            self.logf.flush()

    # -- logging ------------------------------------------------------------
    def record(self, kind, conn, t_send, m_send, outcome, site, m_conn=None):
        m_done = time.monotonic()
        t_done = t_send + (m_done - m_send)
        if kind != "reopen":
            self.stats.add(outcome, site)
        if self.logf:
            conn_ms = f"{(m_conn - m_send) * 1000:.3f}" if m_conn is not None else "-"
            self.logbuf.append(f"{t_send:.6f}\t{t_done:.6f}\t{kind}\t{conn}\t{outcome}\t"
                               f"{site or '-'}\t{(m_done - m_send) * 1000:.3f}\t{conn_ms}\n")

    def flush(self):
        if self.logf and self.logbuf:
            self.logf.write("".join(self.logbuf))
            self.logbuf.clear()
            self.logf.flush()

    # -- HTTP ---------------------------------------------------------------
    async def connect(self):
        return await asyncio.open_connection(self.host, self.port)

    @staticmethod
    async def exchange(reader, writer, req):
        """Sends one request, returns the site of a 200 answer."""
        writer.write(req)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise BadResponse(f"bad status line {lines[0]!r}")
        length = None
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            if k.strip().lower() == "content-length":
                length = int(v.strip())
        if length is None:
            raise BadResponse("no Content-Length")
        body = await reader.readexactly(length)
        if parts[1] != "200":
            raise BadResponse(f"status {parts[1]}")
        try:
            site = json.loads(body).get("site")
        except ValueError as e:
            raise BadResponse("bad JSON") from e
        return str(site) if site else "-"

    @staticmethod
    def close(writer):
        if writer is not None:
            try:
                writer.close()
            except Exception:
                pass

    async def one_new(self, seq):
        t_send, m_send = time.time(), time.monotonic()
        writer = None
        outcome, site, m_conn = "ok", "-", None
        try:
            async with asyncio.timeout(self.a.timeout):
                reader, writer = await self.connect()
                m_conn = time.monotonic()
                site = await self.exchange(reader, writer, self.req_close)
        except Exception as e:  # noqa: BLE001 - every failure is an outcome
            outcome = classify_exc(e)
        # connect_ms tells a connection that never came up from a request lost after it.
        self.record("new", f"n{seq}", t_send, m_send, outcome, site, m_conn)
        if outcome == "ok":
            # Let the server close first (Connection: close) so TIME_WAIT stays
            # on its side; bounded, and not part of the measured latency.
            try:
                async with asyncio.timeout(1.0):
                    await reader.read()
            except Exception:  # noqa: BLE001
                pass
        self.close(writer)

    async def long_lived(self, idx, end):
        """One keep-alive connection, one request per interval until `end`."""
        loop = asyncio.get_running_loop()
        interval = self.a.long_interval_ms / 1000.0
        reader = writer = None
        gen = 0
        nxt = loop.time()
        while nxt < end:
            await asyncio.sleep(max(0.0, nxt - loop.time()))
            t_send, m_send = time.time(), time.monotonic()
            outcome, site = "ok", "-"
            try:
                async with asyncio.timeout(self.a.timeout):
                    if writer is None:
                        c_t, c_m = time.time(), time.monotonic()
                        try:
                            reader, writer = await self.connect()
                        except BaseException as e:
                            if gen > 0:
                                self.record("reopen", f"l{idx}.{gen}", c_t, c_m,
                                            "timeout" if isinstance(e, asyncio.CancelledError)
                                            else classify_exc(e), "-")
                            raise
                        if gen > 0:
                            self.record("reopen", f"l{idx}.{gen}", c_t, c_m, "ok", "-")
                    site = await self.exchange(reader, writer, self.req_keep)
            except Exception as e:  # noqa: BLE001
                outcome = classify_exc(e)
            self.record("long", f"l{idx}.{gen}", t_send, m_send, outcome, site)
            if outcome != "ok":
                self.close(writer)
                reader = writer = None
                gen += 1
            nxt += interval
            now = loop.time()
            if nxt < now:  # skip ticks missed while waiting for a slow answer
                nxt += ((now - nxt) // interval + 1) * interval
        self.close(writer)

    # -- driver ---------------------------------------------------------------
    def spawn(self, coro):
        t = asyncio.create_task(coro)
        self.inflight.add(t)
        t.add_done_callback(self.inflight.discard)
        return t

    async def ticker(self, start):
        """Flushes the log every 0.5 s, prints a --live line every second."""
        loop = asyncio.get_running_loop()
        k = 0
        while True:
            k += 1
            await asyncio.sleep(max(0.0, start + k * 0.5 - loop.time()))
            self.flush()
            if self.a.live and k % 2 == 0:
                print(self.stats.live_line(k // 2), flush=True)

    async def run(self):
        a = self.a
        loop = asyncio.get_running_loop()
        start = loop.time()
        end = start + a.duration
        tick = asyncio.create_task(self.ticker(start))
        longs = [self.spawn(self.long_lived(i, end)) for i in range(a.long_lived)]
        seq = 0
        if a.rate > 0:
            while True:
                t = start + seq / a.rate
                if t >= end:
                    break
                delay = t - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                self.spawn(self.one_new(seq))
                seq += 1
        await asyncio.sleep(max(0.0, end - loop.time()))
        # In-flight requests end by their own timeout; bound the wait anyway.
        pending = set(self.inflight) | set(longs)
        if pending:
            _, late = await asyncio.wait(pending, timeout=a.timeout + 1.5)
            for t in late:
                t.cancel()
        tick.cancel()
        self.flush()
        if self.logf:
            self.logf.close()
        print(f"summary: target={a.target} rate={a.rate}/s duration={a.duration}s "
              f"long={a.long_lived} {self.stats.summary()}", flush=True)


def main():
    ap = argparse.ArgumentParser(description="failsteer test load generator")
    ap.add_argument("--target", required=True, help="ADDR:PORT or [V6ADDR]:PORT")
    ap.add_argument("--rate", type=float, required=True, help="new connections per second")
    ap.add_argument("--duration", type=float, required=True, help="seconds")
    ap.add_argument("--long-lived", type=int, default=0, metavar="K")
    ap.add_argument("--long-interval-ms", type=float, default=200.0)
    ap.add_argument("--timeout", type=float, default=3.0, help="per request, connect included")
    ap.add_argument("--log")
    ap.add_argument("--live", action="store_true")
    ap.add_argument("--image-bytes", type=int, default=2048)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sites", default="primary,backup",
                    help="site names always shown in --live/summary counts (others when seen)")
    a = ap.parse_args()
    if a.rate < 0 or a.duration <= 0 or a.timeout <= 0 or a.long_interval_ms <= 0 \
            or a.long_lived < 0 or a.image_bytes < 0:
        ap.error("rate, long-lived and image-bytes must be >= 0; duration, timeout, interval > 0")
    # rate * timeout sockets may be open at once.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, 1 << 20), hard))
    try:
        asyncio.run(LoadGen(a).run())
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
