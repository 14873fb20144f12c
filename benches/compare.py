#!/usr/bin/env python3
"""Side-by-side comparison of ferrocached and memcached (issue 3's method).

Each server runs with one worker thread (-t 1) pinned to CPU 0; the load generator
(benches/loadgen.rs) is pinned to CPU 1. Servers alternate A B A B for --rounds rounds
of --seconds each per workload; medians are compared. Server efficiency is operations per
server CPU second (utime + stime from /proc/PID/stat over the run).

usage: benches/compare.py [--rounds 3] [--seconds 10] [--workloads get90,get90_p16,mget10,set4k]
Run from the repository root after `cargo build --release --examples`.
Prints a table and one summary line per workload.
"""
import argparse, os, socket, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FERRO = os.path.join(ROOT, "target/release/ferrocached")
LOADGEN = os.path.join(ROOT, "target/release/examples/loadgen")
MEMCACHED = os.environ.get("MEMCACHED_BIN", "/usr/bin/memcached")

WORKLOADS = {
    "get90": dict(connections=50, pipeline=1, get_ratio=0.9, value_size=100, multiget=1),
    "get90_p16": dict(connections=50, pipeline=16, get_ratio=0.9, value_size=100, multiget=1),
    "mget10": dict(connections=50, pipeline=1, get_ratio=1.0, value_size=100, multiget=10),
    "set4k": dict(connections=50, pipeline=1, get_ratio=0.0, value_size=4096, multiget=1),
}
KEYS = 100_000

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime

def start(binary, port):
    cmd = ["taskset", "-c", "0", binary, "-p", str(port), "-l", "127.0.0.1", "-U", "0", "-t", "1", "-m", "1024", "-c", "4096"]
    if os.geteuid() == 0:
        cmd += ["-u", "root"]
    cmd += os.environ.get("FERRO_ARGS", "").split() if binary == FERRO else []  # e.g. -o io_engine=epoll
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port)).close(); return proc
        except OSError:
            if time.time() > deadline: raise
            time.sleep(0.05)

def loadgen(port, workload, seconds, prefill=False):
    w = WORKLOADS[workload]
    cmd = ["taskset", "-c", "1", LOADGEN, "--server", f"127.0.0.1:{port}", "--keys", str(KEYS),
           "--value-size", str(w["value_size"])]
    if prefill:
        cmd += ["--prefill"]
    else:
        cmd += ["--connections", str(w["connections"]), "--pipeline", str(w["pipeline"]),
                "--get-ratio", str(w["get_ratio"]), "--multiget", str(w["multiget"]), "--duration", str(seconds)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    return dict(part.split("=") for part in out.split() if "=" in part)

def run_one(binary, workload, seconds):
    port = free_port()
    proc = start(binary, port)
    try:
        loadgen(port, workload, seconds, prefill=True)
        hz = os.sysconf("SC_CLK_TCK")
        before = cpu_ticks(proc.pid)
        result = loadgen(port, workload, seconds)
        cpu = (cpu_ticks(proc.pid) - before) / hz
        ops = int(result["ops"])
        return dict(ops_per_sec=float(result["ops_per_sec"]), cpu_us_per_op=cpu * 1e6 / max(ops, 1),
                    efficiency=ops / max(cpu, 1e-9), p50=int(result["p50_us"]), p99=int(result["p99_us"]))
    finally:
        proc.kill(); proc.wait()

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    a = ap.parse_args()
    print(f"# {time.strftime('%Y-%m-%d')} {os.uname().nodename} nproc={os.cpu_count()} rounds={a.rounds} seconds={a.seconds}")
    print("| workload | server | ops/s | server CPU µs/op | ops per CPU-s | p50 µs | p99 µs |")
    print("|---|---|---|---|---|---|---|")
    summary = []
    for workload in a.workloads.split(","):
        results = {"ferrocached": [], "memcached": []}
        for _ in range(a.rounds):
            results["ferrocached"].append(run_one(FERRO, workload, a.seconds))
            results["memcached"].append(run_one(MEMCACHED, workload, a.seconds))
        med = {name: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for name, runs in results.items()}
        for name in ("ferrocached", "memcached"):
            m = med[name]
            print(f"| {workload} | {name} | {m['ops_per_sec']:.0f} | {m['cpu_us_per_op']:.2f} | {m['efficiency']:.0f} | {m['p50']:.0f} | {m['p99']:.0f} |")
        f, m = med["ferrocached"], med["memcached"]
        summary.append(f"{workload}: efficiency x{f['efficiency'] / m['efficiency']:.2f} ops/s x{f['ops_per_sec'] / m['ops_per_sec']:.2f} p99 {f['p99']:.0f} vs {m['p99']:.0f} us")
    print()
    for line in summary:
        print(line)

main()
