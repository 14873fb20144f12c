#!/usr/bin/env python3
"""Hit ratio under cache-aside with Zipf popularity (issue 13), both servers in one run.

Workload: get a key; on a miss, set it (400-byte value). Key popularity is Zipf with
alpha 0.99 over 1,000,000 keys (`key:` and 12 digits, the popularity rank). The same
seeded sequence of 500,000 requests goes to each server, started with `-m 16 -t 1`; the
first 200,000 are warm-up and the hit ratio counts the other 300,000.

Requests go strictly one after another on one connection (the set of a miss has
`noreply`, so it costs no round trip and is still applied before the next get): every
request sees the cache exactly as the previous ones left it, which pipelining gets would
change (a later get of the same key, or of a key the miss's set evicts). Runs in about
a minute per server.

usage: benches/hitratio.py [--ferrocached target/release/ferrocached] [--memcached memcached]
                           [--requests 500000] [--warmup 200000] [--seed 13]
Prints one line per server, then one summary line:
`hitratio: ferrocached H holding N items, memcached H holding N items, ratio x`.
"""
import argparse, bisect, itertools, os, random, socket, subprocess, time

from memory import connect, free_port, read_until, stats  # benches/memory.py, beside this script

KEYS = 1_000_000
ALPHA = 0.99
VALUE = b"v" * 400

def zipf_sequence(count, seed):
    """`count` popularity ranks (0 = most popular) drawn by inverse transform sampling."""
    cumulative = list(itertools.accumulate(1.0 / (rank ** ALPHA) for rank in range(1, KEYS + 1)))
    total = cumulative[-1]
    rng = random.Random(seed)
    return [bisect.bisect_left(cumulative, rng.random() * total) for _ in range(count)]

def run(binary, sequence, warmup):
    port = free_port()
    cmd = [binary, "-p", str(port), "-l", "127.0.0.1", "-U", "0", "-m", "16", "-t", "1"]
    if os.geteuid() == 0:
        cmd += ["-u", "root"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sock = connect(port)
        # Without it a get written right after a noreply set waits for the delayed ack.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        hits = 0
        started = time.time()
        for position, rank in enumerate(sequence):
            key = b"key:%012d" % rank
            sock.sendall(b"get " + key + b"\r\n")
            reply = read_until(sock, b"", b"END\r\n")
            if reply.startswith(b"VALUE"):
                if position >= warmup:
                    hits += 1
            else:
                sock.sendall(b"set " + key + b" 0 0 400 noreply\r\n" + VALUE + b"\r\n")
        st = stats(sock)
        measured = len(sequence) - warmup
        result = dict(name=os.path.basename(binary), hit_ratio=hits / measured, items=int(st["curr_items"]),
                      evictions=int(st["evictions"]), seconds=time.time() - started)
        print(f"{result['name']}: hit_ratio={result['hit_ratio']:.4f} ({hits}/{measured}) "
              f"curr_items={result['items']} evictions={result['evictions']} seconds={result['seconds']:.0f}")
        return result
    finally:
        proc.kill(); proc.wait()

def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser()
    ap.add_argument("--ferrocached", default=os.path.join(root, "target/release/ferrocached"))
    ap.add_argument("--memcached", default=os.environ.get("MEMCACHED_BIN", "/usr/bin/memcached"))
    ap.add_argument("--requests", type=int, default=500_000)
    ap.add_argument("--warmup", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=13)
    a = ap.parse_args()
    sequence = zipf_sequence(a.requests, a.seed)
    print(f"# {time.strftime('%Y-%m-%d')} zipf alpha={ALPHA} keys={KEYS} requests={a.requests} "
          f"warmup={a.warmup} seed={a.seed} distinct_keys={len(set(sequence))} value=400B -m 16")
    ferro = run(a.ferrocached, sequence, a.warmup)
    memcached = run(a.memcached, sequence, a.warmup)
    print(f"hitratio: ferrocached {ferro['hit_ratio']:.4f} holding {ferro['items']} items, "
          f"memcached {memcached['hit_ratio']:.4f} holding {memcached['items']} items, "
          f"ratio x{ferro['hit_ratio'] / memcached['hit_ratio']:.3f}")

if __name__ == "__main__":
    main()
