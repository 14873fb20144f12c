#!/usr/bin/env python3
"""Hostile-client memory figures (issue 10, points 1 and 2), for ferrocached and
memcached side by side in one run.

usage: benches/hostile.py [--ferrocached target/release/ferrocached] [--memcached memcached]
Prints, per server: RSS growth for one never-reading connection sending one
`get k k ... k` line (6,000 keys of 16,000 bytes), for twenty such connections (3,000
keys each), and RSS per idle connection after 5,000 connections did one set + get.
"""
import argparse, os, resource, socket, subprocess, time

from memory import free_port, rss_kib  # benches/memory.py, beside this script

def connect(port, rcvbuf=None):
    deadline = time.time() + 10
    while True:
        try:
            s = socket.socket()
            if rcvbuf:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            s.connect(("127.0.0.1", port))
            return s
        except OSError:
            if time.time() > deadline: raise
            time.sleep(0.05)

def read_until(sock, marker):
    buf = b""
    while marker not in buf:
        chunk = sock.recv(1 << 16)
        if not chunk: raise RuntimeError("connection closed")
        buf += chunk
    return buf

def start(binary, extra):
    port = free_port()
    args = [binary, "-p", str(port), "-l", "127.0.0.1", "-U", "0", "-c", "20000"]
    if os.geteuid() == 0:
        args += ["-u", "root"]
    proc = subprocess.Popen(args + extra, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    connect(port).close()
    return proc, port

def settle(pid, seconds=1.5):
    time.sleep(seconds)
    return rss_kib(pid)

def multiget(binary, connections, keys):
    proc, port = start(binary, ["-m", "1024"])
    try:
        c = connect(port)
        c.sendall(b"set k 0 0 16000\r\n" + b"v" * 16000 + b"\r\n")
        read_until(c, b"STORED\r\n")
        c.sendall(b"get k\r\n"); read_until(c, b"END\r\n")
        before = settle(proc.pid, 0.5)
        held = []
        line = b"get" + b" k" * keys + b"\r\n"
        for _ in range(connections):
            s = connect(port, rcvbuf=4096)
            s.sendall(line)
            held.append(s)
        after = settle(proc.pid)
        c.sendall(b"get k\r\n"); read_until(c, b"END\r\n")
        for s in held: s.close()
        return (after - before) / 1024
    finally:
        proc.kill(); proc.wait()

def idle(binary, count):
    proc, port = start(binary, [])
    try:
        before = settle(proc.pid, 0.5)
        held = []
        for i in range(count):
            s = connect(port)
            s.sendall(b"set idle%d 0 0 5\r\nhello\r\nget idle%d\r\n" % (i, i))
            read_until(s, b"END\r\n")
            held.append(s)
        after = settle(proc.pid)
        for s in held: s.close()
        return (after - before) * 1024 / count
    finally:
        proc.kill(); proc.wait()

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ferrocached", default="target/release/ferrocached")
    p.add_argument("--memcached", default="memcached")
    p.add_argument("--idle", type=int, default=5000)
    a = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    for name, binary in (("memcached", a.memcached), ("ferrocached", a.ferrocached)):
        one = multiget(binary, 1, 6000)
        twenty = multiget(binary, 20, 3000)
        per_idle = idle(binary, a.idle)
        print(f"{name:12} multiget 1x6000: +{one:.1f} MiB   20x3000: +{twenty:.1f} MiB   "
              f"idle: {per_idle:.0f} B/connection ({a.idle})", flush=True)

if __name__ == "__main__":
    main()
