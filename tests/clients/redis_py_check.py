#!/usr/bin/env python3
"""Checks slotgate from redis-py 8, the way a Python application would use it.

Used by the Rust integration tests (and handy by hand):

    python3 tests/clients/redis_py_check.py --port P --keys N --prefix X

1. `redis.Redis(port=P)` with redis-py's defaults, which open every connection with `HELLO 3`
   (RESP3): the proxy must look like one standalone server.
2. `redis.cluster.RedisCluster(host="127.0.0.1", port=P)`: the proxy must look like a cluster
   (its CLUSTER SLOTS / SHARDS emulation) and serve every slot.

In each mode it verifies that keys `X:0` .. `X:{N-1}` (written earlier by someone else) read
back as `v0` .. `v{N-1}`, one by one in a pipeline and with MGET, then writes, reads and
deletes keys of its own under `X:py:<mode>:`. It prints a JSON summary on stdout and exits
0 when everything matched, 1 on any mismatch or error (explained on stderr and in the
summary), 2 when redis-py 8 is missing.
"""

import argparse
import json
import sys
import traceback

# How many mismatches to spell out before just counting them.
MAX_REPORTED = 10
# Keys per MGET, so a large --keys does not build one huge command.
MGET_CHUNK = 500


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1", help="proxy address (default 127.0.0.1)")
    p.add_argument("--port", type=int, required=True, help="proxy port")
    p.add_argument("--keys", type=int, default=0, help="pre-written keys PREFIX:0..N-1 to verify")
    p.add_argument("--prefix", default="slotgate", help="key prefix (default slotgate)")
    p.add_argument(
        "--mode",
        choices=["both", "standalone", "cluster"],
        default="both",
        help="which client(s) to run (default both)",
    )
    p.add_argument("--own-keys", type=int, default=100, help="keys this script writes itself")
    p.add_argument("--timeout", type=float, default=10.0, help="socket timeout in seconds")
    return p.parse_args()


class Check:
    """Collects the results of one client mode."""

    def __init__(self, mode):
        self.mode = mode
        self.errors = []
        self.mismatches = 0
        self.facts = {}

    def expect(self, what, got, want):
        if got != want:
            self.mismatches += 1
            if self.mismatches <= MAX_REPORTED:
                self.errors.append(f"{what}: got {got!r}, want {want!r}")
            return False
        return True

    def summary(self):
        if self.mismatches > MAX_REPORTED:
            self.errors.append(f"... {self.mismatches - MAX_REPORTED} more mismatches")
        return {"ok": not self.errors, "mismatches": self.mismatches, "errors": self.errors, **self.facts}


def chunks(items, size):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def verify_existing(check, client, mget, prefix, n):
    """Keys PREFIX:i must hold vi: one GET each (pipelined) and MGET in chunks."""
    keys = [f"{prefix}:{i}" for i in range(n)]
    want = [f"v{i}".encode() for i in range(n)]
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.get(key)
    for key, got, expected in zip(keys, pipe.execute(), want):
        check.expect(f"GET {key}", got, expected)
    got_all = []
    for part in chunks(keys, MGET_CHUNK):
        got_all.extend(mget(part))
    for key, got, expected in zip(keys, got_all, want):
        check.expect(f"MGET {key}", got, expected)
    check.expect("MGET reply count", len(got_all), n)
    check.facts["verified_keys"] = n


def exercise_own_keys(check, client, mget, prefix, n):
    """Writes, reads, updates and deletes keys of our own, across many slots."""
    keys = [f"{prefix}:{i}" for i in range(n)]
    pipe = client.pipeline(transaction=False)
    for i, key in enumerate(keys):
        pipe.set(key, f"own{i}")
    for key, ok in zip(keys, pipe.execute()):
        check.expect(f"SET {key}", ok, True)
    got = []
    for part in chunks(keys, MGET_CHUNK):
        got.extend(mget(part))
    for i, (key, value) in enumerate(zip(keys, got)):
        check.expect(f"MGET own {key}", value, f"own{i}".encode())

    counter, hash_key = f"{prefix}:counter", f"{prefix}:hash"
    client.delete(counter, hash_key)
    check.expect("INCR", client.incr(counter), 1)
    check.expect("INCRBY", client.incrby(counter, 41), 42)
    check.expect("HSET", client.hset(hash_key, mapping={"f1": "a", "f2": "b"}), 2)
    # Under RESP3 HGETALL is a map frame; redis-py turns it into a dict either way.
    check.expect("HGETALL", client.hgetall(hash_key), {b"f1": b"a", b"f2": b"b"})
    check.expect("GET missing", client.get(f"{prefix}:missing"), None)

    deleted = sum(client.delete(*part) for part in chunks(keys + [counter, hash_key], MGET_CHUNK))
    check.expect("DEL own keys", deleted, n + 2)
    check.expect("EXISTS after DEL", client.exists(*keys[:MGET_CHUNK]) if keys else 0, 0)
    check.facts["own_keys"] = n


def run_standalone(args, redis):
    check = Check("standalone")
    # redis-py's defaults (RESP3 via HELLO 3); only the address and a timeout are set.
    client = redis.Redis(host=args.host, port=args.port, socket_timeout=args.timeout)
    try:
        conn = client.connection_pool.get_connection()
        try:
            check.facts["protocol"] = getattr(conn, "protocol", None)
        finally:
            client.connection_pool.release(conn)
        check.expect("PING", client.ping(), True)
        verify_existing(check, client, client.mget, args.prefix, args.keys)
        exercise_own_keys(check, client, client.mget, f"{args.prefix}:py:standalone", args.own_keys)
    finally:
        client.close()
    return check


def run_cluster(args, redis):
    check = Check("cluster")
    from redis.cluster import RedisCluster

    client = RedisCluster(host=args.host, port=args.port, socket_timeout=args.timeout)
    try:
        check.facts["nodes"] = sorted(n.name for n in client.get_nodes())
        check.expect("PING", client.ping(target_nodes=RedisCluster.PRIMARIES), True)
        # Plain MGET must be single-slot in cluster mode; the client splits this one by slot.
        verify_existing(check, client, client.mget_nonatomic, args.prefix, args.keys)
        exercise_own_keys(check, client, client.mget_nonatomic, f"{args.prefix}:py:cluster", args.own_keys)
    finally:
        client.close()
    return check


def main():
    args = parse_args()
    try:
        import redis
    except ImportError:
        print("redis-py is not installed: pip install 'redis>=8'", file=sys.stderr)
        return 2
    if int(redis.__version__.split(".")[0]) < 8:
        print(f"redis-py {redis.__version__} is too old: pip install 'redis>=8'", file=sys.stderr)
        return 2

    modes = ["standalone", "cluster"] if args.mode == "both" else [args.mode]
    runners = {"standalone": run_standalone, "cluster": run_cluster}
    summary = {"port": args.port, "prefix": args.prefix, "redis_py": redis.__version__}
    ok = True
    for mode in modes:
        try:
            check = runners[mode](args, redis)
            result = check.summary()
        except Exception as e:  # noqa: BLE001 - any client failure is a test failure
            # The traceback goes to stderr; the summary keeps the one-line reason.
            traceback.print_exc(file=sys.stderr)
            result = {"ok": False, "errors": [f"{type(e).__name__}: {e}"]}
        summary[mode] = result
        if not result["ok"]:
            ok = False
            for error in result["errors"]:
                print(f"redis_py_check [{mode}] FAILED: {error}", file=sys.stderr)
    summary["ok"] = ok
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
