#!/usr/bin/env python3
"""Memory figures from issue 2/3/13: RSS after 1,000,000 sets of 100-byte values with
12-byte keys, for any server binary, measured in one run.

usage: benches/memory.py [BINARY] [--limit-mb 64] [--items 1000000] [--threads 1]
With BINARY: one line for that server (limit, RSS before/after, RSS/limit, bytes per
item, curr_items, evictions, whether the newest 1000 items are all present).
Without: ferrocached (target/release/ferrocached) and memcached ($MEMCACHED_BIN or
/usr/bin/memcached), each at -m 4096 (bytes per item, nothing evicted) and at -m 64
(RSS/limit, evicting), then one summary line:
`memory: bytes/item ferrocached B memcached B; RSS/limit at -m 64 ferrocached R memcached R`.
"""
import argparse, os, socket, subprocess, sys, time

def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close(); return port

def connect(port):
    deadline = time.time() + 10
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port))
        except OSError:
            if time.time() > deadline: raise
            time.sleep(0.05)

def read_until(sock, buf, marker):
    while marker not in buf:
        chunk = sock.recv(1 << 20)
        if not chunk: raise RuntimeError("connection closed")
        buf += chunk
    return buf

def stats(sock):
    sock.sendall(b"stats\r\n")
    data = read_until(sock, b"", b"END\r\n")
    out = {}
    for line in data.decode().split("\r\n"):
        parts = line.split(" ")
        if len(parts) == 3 and parts[0] == "STAT": out[parts[1]] = parts[2]
    return out

def measure(binary, limit_mb, items, threads):
    port = free_port()
    cmd = [binary, "-p", str(port), "-l", "127.0.0.1", "-U", "0", "-m", str(limit_mb), "-t", str(threads)]
    if os.geteuid() == 0: cmd += ["-u", "root"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sock = connect(port)
        sock.sendall(b"version\r\n"); read_until(sock, b"", b"\r\n")
        time.sleep(0.3)
        before = rss_kib(proc.pid)
        value = b"v" * 100
        batch = 1000
        for start in range(0, items, batch):
            req = b"".join(b"set k%011d 0 0 100 noreply\r\n%s\r\n" % (i, value) for i in range(start, min(start + batch, items)))
            sock.sendall(req)
        sock.sendall(b"version\r\n"); read_until(sock, b"", b"VERSION")
        time.sleep(0.5)
        after = rss_kib(proc.pid)
        st = stats(sock)
        newest_ok = True
        for i in range(items - 1000, items):
            sock.sendall(b"get k%011d\r\n" % i)
            data = read_until(sock, b"", b"END\r\n")
            if not data.startswith(b"VALUE"): newest_ok = False
        limit_kib = limit_mb * 1024
        per_item = (after - before) * 1024 / max(int(st["curr_items"]), 1)
        print(f"{os.path.basename(binary)} -m {limit_mb}: rss_before={before/1024:.1f}MiB rss_after={after/1024:.1f}MiB "
              f"rss/limit={after/limit_kib:.3f} bytes_per_item={per_item:.0f} curr_items={st['curr_items']} "
              f"evictions={st['evictions']} newest_1000_present={newest_ok}")
        return dict(rss_per_limit=after / limit_kib, bytes_per_item=per_item)
    finally:
        proc.kill(); proc.wait()

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary", nargs="?"); ap.add_argument("--limit-mb", type=int, default=64)
    ap.add_argument("--items", type=int, default=1_000_000); ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    if a.binary:
        measure(a.binary, a.limit_mb, a.items, a.threads)
        return
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    servers = {"ferrocached": os.path.join(root, "target/release/ferrocached"),
               "memcached": os.environ.get("MEMCACHED_BIN", "/usr/bin/memcached")}
    dense = {name: measure(binary, 4096, a.items, a.threads) for name, binary in servers.items()}
    tight = {name: measure(binary, 64, a.items, a.threads) for name, binary in servers.items()}
    print(f"memory: bytes/item at -m 4096 ferrocached {dense['ferrocached']['bytes_per_item']:.1f} "
          f"memcached {dense['memcached']['bytes_per_item']:.1f}; RSS/limit at -m 64 "
          f"ferrocached {tight['ferrocached']['rss_per_limit']:.3f} memcached {tight['memcached']['rss_per_limit']:.3f}")

if __name__ == "__main__":
    main()
