#!/usr/bin/env python3
"""Memory figures from issue 2/3: RSS after 1,000,000 sets of 100-byte values with
12-byte keys, for any server binary, measured in one run.

usage: benches/memory.py BINARY [--limit-mb 64] [--items 1000000] [--threads 1]
Prints one summary line: server, limit, RSS before/after, RSS/limit, bytes per item,
curr_items, evictions, and whether the newest 1000 items are all present.
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

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary"); ap.add_argument("--limit-mb", type=int, default=64)
    ap.add_argument("--items", type=int, default=1_000_000); ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    port = free_port()
    cmd = [a.binary, "-p", str(port), "-l", "127.0.0.1", "-U", "0", "-m", str(a.limit_mb), "-t", str(a.threads)]
    if os.geteuid() == 0: cmd += ["-u", "root"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sock = connect(port)
        sock.sendall(b"version\r\n"); read_until(sock, b"", b"\r\n")
        time.sleep(0.3)
        before = rss_kib(proc.pid)
        value = b"v" * 100
        batch = 1000
        for start in range(0, a.items, batch):
            req = b"".join(b"set k%011d 0 0 100 noreply\r\n%s\r\n" % (i, value) for i in range(start, min(start + batch, a.items)))
            sock.sendall(req)
        sock.sendall(b"version\r\n"); read_until(sock, b"", b"VERSION")
        time.sleep(0.5)
        after = rss_kib(proc.pid)
        st = stats(sock)
        newest_ok = True
        for i in range(a.items - 1000, a.items):
            sock.sendall(b"get k%011d\r\n" % i)
            data = read_until(sock, b"", b"END\r\n")
            if not data.startswith(b"VALUE"): newest_ok = False
        limit_kib = a.limit_mb * 1024
        per_item = (after - before) * 1024 / max(int(st["curr_items"]), 1)
        print(f"{os.path.basename(a.binary)} -m {a.limit_mb}: rss_before={before/1024:.1f}MiB rss_after={after/1024:.1f}MiB "
              f"rss/limit={after/limit_kib:.3f} bytes_per_item={per_item:.0f} curr_items={st['curr_items']} "
              f"evictions={st['evictions']} newest_1000_present={newest_ok}")
    finally:
        proc.kill(); proc.wait()

if __name__ == "__main__":
    main()
