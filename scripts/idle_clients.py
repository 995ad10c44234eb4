#!/usr/bin/env python3
"""idle_clients.py: slotgate's memory with many idle clients, and after a large request.

Driven by scripts/bench-idle-clients.sh, which starts the cluster and slotgate and passes
slotgate's port and PID. Standard library only (asyncio), no extra packages.

Steps, each followed by slotgate's RSS (VmRSS from /proc/<pid>/status):
  1. baseline: slotgate started, no client;
  2. --clients connections opened (in waves of --wave), each sends PING and reads +PONG,
     then stays open and idle; RSS after a pause = idle cost, per connection;
  3. on --big-conns of those connections at once: SET of a --big-mb MB value, then GET of
     it back (a large request through the client read buffer, a large reply through the
     write path); RSS right after, then after --settle seconds: per-connection buffers must
     shrink back, so RSS should return near step 2's figure;
  4. every connection closed; RSS after --settle seconds.
Prints one "figure: value" line per measurement, and a JSON line at the end for scripts.
"""

import argparse
import asyncio
import json
import resource
import sys
import time


def rss_kb(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def encode(*args):
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode()
        out.append(f"${len(arg)}\r\n".encode())
        out.append(arg)
        out.append(b"\r\n")
    return b"".join(out)


async def open_idle(port, count, wave, ping=True):
    """Opens `count` connections, each answering PING (unless `ping` is false: then the
    connection never sends a byte); returns (reader, writer) pairs."""
    conns = []

    async def one():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        if not ping:
            return reader, writer
        writer.write(b"*1\r\n$4\r\nPING\r\n")
        await writer.drain()
        line = await reader.readline()
        if line != b"+PONG\r\n":
            raise RuntimeError(f"PING answered {line!r}")
        return reader, writer

    while len(conns) < count:
        batch = min(wave, count - len(conns))
        conns.extend(await asyncio.gather(*(one() for _ in range(batch))))
    return conns


async def big_round_trip(reader, writer, key, value):
    writer.write(encode("SET", key, value))
    await writer.drain()
    line = await reader.readline()
    if line != b"+OK\r\n":
        raise RuntimeError(f"SET answered {line[:200]!r}")
    writer.write(encode("GET", key))
    await writer.drain()
    header = await reader.readline()
    if header != f"${len(value)}\r\n".encode():
        raise RuntimeError(f"GET answered {header[:200]!r}")
    body = await reader.readexactly(len(value) + 2)
    if body[:-2] != value:
        raise RuntimeError("GET returned different bytes")
    writer.write(encode("DEL", key))
    await writer.drain()
    await reader.readline()


async def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pid", type=int, required=True, help="slotgate's PID")
    parser.add_argument("--clients", type=int, default=10000)
    parser.add_argument("--wave", type=int, default=500)
    parser.add_argument("--big-conns", type=int, default=10)
    parser.add_argument("--big-mb", type=float, default=8)
    parser.add_argument("--settle", type=float, default=3)
    parser.add_argument(
        "--no-ping",
        action="store_true",
        help="connections send nothing at all (to tell buffers from per-connection state)",
    )
    opts = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = opts.clients + 100
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            sys.exit(f"idle_clients: need {need} file descriptors, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))

    figures = {}

    def record(name, value, unit=""):
        figures[name] = value
        print(f"{name}: {value}{unit}", flush=True)

    pid = opts.pid
    record("rss_baseline_kb", rss_kb(pid), " KiB")

    started = time.monotonic()
    conns = await open_idle(opts.port, opts.clients, opts.wave, ping=not opts.no_ping)
    record("open_seconds", round(time.monotonic() - started, 2), " s")
    await asyncio.sleep(opts.settle)
    idle = rss_kb(pid)
    record("clients", len(conns))
    record("rss_idle_kb", idle, " KiB")
    per_conn = (idle - figures["rss_baseline_kb"]) * 1024 / len(conns)
    record("bytes_per_idle_connection", round(per_conn), " B")

    value = b"x" * int(opts.big_mb * 1024 * 1024)
    big = conns[: opts.big_conns]
    await asyncio.gather(
        *(big_round_trip(r, w, f"idle-bench:big:{i}", value) for i, (r, w) in enumerate(big))
    )
    record("rss_after_big_kb", rss_kb(pid), " KiB")
    await asyncio.sleep(opts.settle)
    after = rss_kb(pid)
    record("rss_after_big_settled_kb", after, " KiB")
    record("rss_growth_after_big_kb", after - idle, " KiB")

    # Still usable after the big requests: one PING on every connection.
    for reader, writer in conns:
        writer.write(b"*1\r\n$4\r\nPING\r\n")
    for reader, writer in conns:
        await writer.drain()
        line = await reader.readline()
        if line != b"+PONG\r\n":
            raise RuntimeError(f"PING after the big requests answered {line!r}")
    record("rss_after_ping_all_kb", rss_kb(pid), " KiB")

    for _, writer in conns:
        writer.close()
    await asyncio.gather(*(w.wait_closed() for _, w in conns), return_exceptions=True)
    await asyncio.sleep(opts.settle)
    record("rss_after_close_kb", rss_kb(pid), " KiB")
    print("json: " + json.dumps(figures), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
