#!/usr/bin/env python3
"""Side-by-side comparison of ferrocached and memcached (issue 3's method, issue 13's
fairness fixes).

Each server runs with one worker thread (-t 1) pinned to CPU 0; the load generator
(benches/loadgen.rs) is pinned to CPU 1. Servers alternate A B A B for --rounds rounds
of --seconds each per workload; medians are compared. Server efficiency is operations per
server CPU second (utime + stime from /proc/PID/stat over the run); it is the figure to
trust on a shared machine, where ops/s also measures whoever else holds the two cores.

Fairness to the reference (issue 13). memcached 1.6.18 sends the reply to every text
`get` in a sendmsg of its own (0.9 sendmsg per request at 90% gets, against one per
16-request batch for ferrocached): that is memcached's real cost, and any generator
(memtier_benchmark included) sees it. It also means the generator must wake and read up
to 16 times per batch for memcached, once for ferrocached, so a generator starved of CPU
caps memcached's ops/s first. Therefore:
- the generator keeps `pipeline` requests in flight per connection and answers every
  reply with a new request (`--mode window`, the way memtier_benchmark's `--pipeline`
  works) instead of writing a batch and waiting for all of it (`--mode lockstep`, the
  old way); in paired runs both gave memcached the same efficiency (346-379 k ops per
  CPU-second), so this choice follows the independent generator rather than a measured
  bias;
- its reply parsing is memchr-based and allocation-free, so its CPU per reply is small;
- the generator's own CPU per operation is reported beside the server's, so a run in
  which the generator, not the server, was the limit shows itself;
- memcached's `-R` (requests per event, default 20) is left alone: a depth-16 pipeline
  never reaches it (measured: `-R 1000` changes nothing).
A cross-check with an independent generator, memcslap (libmemcached-tools: one blocking
thread per connection, depth 1, text protocol, TCP_NODELAY), runs `get` against both
servers and is printed beside the same workload driven by loadgen (get100, get100_c4).
It runs twice: with 50 threads and with 4, a few blocking clients whose every request
waits for the previous reply, so ops/s there measures the server's latency (a server
that holds replies back to batch them loses there; one did).

usage: benches/compare.py [--rounds 3] [--seconds 10] [--workloads get90,get90_p16,mget10,set4k]
                          [--mode window|lockstep] [--memcslap-execute 10000 | 0 to skip]
environment: FERRO_ARGS (extra ferrocached flags), SERVER_THREADS (-t for both servers)
Run from the repository root after `cargo build --release --bins --examples`.
Prints a table, then one summary line per workload and one for the memcslap cross-check.
"""
import argparse, os, re, resource, shutil, socket, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FERRO = os.path.join(ROOT, "target/release/ferrocached")
LOADGEN = os.path.join(ROOT, "target/release/examples/loadgen")
MEMCACHED = os.environ.get("MEMCACHED_BIN", "/usr/bin/memcached")
MEMCSLAP = shutil.which("memcslap")

WORKLOADS = {
    "get90": dict(connections=50, pipeline=1, get_ratio=0.9, value_size=100, multiget=1),
    "get90_p16": dict(connections=50, pipeline=16, get_ratio=0.9, value_size=100, multiget=1),
    "mget10": dict(connections=50, pipeline=1, get_ratio=1.0, value_size=100, multiget=10),
    "set4k": dict(connections=50, pipeline=1, get_ratio=0.0, value_size=4096, multiget=1),
    # memcslap's `get` test driven by loadgen: 50 connections, depth 1, all gets, all hits.
    "get100": dict(connections=50, pipeline=1, get_ratio=1.0, value_size=100, multiget=1),
    # memcslap's 4-thread run driven by loadgen: 4 connections, depth 1, all gets.
    "get100_c4": dict(connections=4, pipeline=1, get_ratio=1.0, value_size=100, multiget=1),
}
KEYS = 100_000

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime

def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime

def start(binary, port):
    # SERVER_THREADS=2 runs both servers with -t 2 on both CPUs (sharing CPU 1 with the
    # generator): a scaling check of CPU per request, not of throughput, on a 2-core machine.
    threads = os.environ.get("SERVER_THREADS", "1")
    cpus = "0" if threads == "1" else "0-1"
    cmd = ["taskset", "-c", cpus, binary, "-p", str(port), "-l", "127.0.0.1", "-U", "0", "-t", threads, "-m", "1024", "-c", "4096"]
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

def loadgen(port, workload, seconds, mode, prefill=False):
    w = WORKLOADS[workload]
    cmd = ["taskset", "-c", "1", LOADGEN, "--server", f"127.0.0.1:{port}", "--keys", str(KEYS),
           "--value-size", str(w["value_size"])]
    if prefill:
        cmd += ["--prefill"]
    else:
        cmd += ["--connections", str(w["connections"]), "--pipeline", str(w["pipeline"]), "--mode", mode,
                "--get-ratio", str(w["get_ratio"]), "--multiget", str(w["multiget"]), "--duration", str(seconds)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    return dict(part.split("=") for part in out.split() if "=" in part)

def run_one(binary, workload, seconds, mode):
    port = free_port()
    proc = start(binary, port)
    try:
        loadgen(port, workload, seconds, mode, prefill=True)
        hz = os.sysconf("SC_CLK_TCK")
        before, generator_before = cpu_ticks(proc.pid), children_cpu()
        result = loadgen(port, workload, seconds, mode)
        cpu = (cpu_ticks(proc.pid) - before) / hz
        generator_cpu = children_cpu() - generator_before
        ops = int(result["ops"])
        return dict(ops_per_sec=float(result["ops_per_sec"]), cpu_us_per_op=cpu * 1e6 / max(ops, 1),
                    efficiency=ops / max(cpu, 1e-9), p50=int(result["p50_us"]), p99=int(result["p99_us"]),
                    generator_us_per_op=generator_cpu * 1e6 / max(ops, 1))
    finally:
        proc.kill(); proc.wait()

def memcslap_one(binary, execute, concurrency):
    """memcslap's `get` test: it sets `execute` keys, then `concurrency` threads each get
    all of them."""
    port = free_port()
    proc = start(binary, port)
    try:
        hz = os.sysconf("SC_CLK_TCK")
        before = cpu_ticks(proc.pid)
        out = subprocess.run(["taskset", "-c", "1", MEMCSLAP, f"--servers=127.0.0.1:{port}", f"--concurrency={concurrency}",
                              f"--execute-number={execute}", "--test=get", "--tcp-nodelay"],
                             capture_output=True, text=True, check=True).stdout
        cpu = (cpu_ticks(proc.pid) - before) / hz
        gets, get_seconds = re.search(r"Time to get\s+(\d+) keys by\s+\d+ threads:\s+([\d.]+) seconds", out).groups()
        ops = int(gets) + execute
        return dict(ops_per_sec=int(gets) / float(get_seconds), efficiency=ops / max(cpu, 1e-9))
    finally:
        proc.kill(); proc.wait()

def medians(results):
    return {name: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for name, runs in results.items()}

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--workloads", default="get90,get90_p16,mget10,set4k")
    ap.add_argument("--mode", choices=["window", "lockstep"], default="window")
    ap.add_argument("--memcslap-execute", type=int, default=10_000)
    a = ap.parse_args()
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} {os.uname().nodename} nproc={os.cpu_count()} rounds={a.rounds} "
          f"seconds={a.seconds} mode={a.mode} loadavg={os.getloadavg()[0]:.1f}")
    print("| workload | server | ops/s | server CPU µs/op | ops per CPU-s | p50 µs | p99 µs | generator CPU µs/op |")
    print("|---|---|---|---|---|---|---|---|")
    summary = []
    workloads = a.workloads.split(",")
    cross_check = a.memcslap_execute > 0 and MEMCSLAP is not None
    if cross_check:
        workloads += [w for w in ("get100", "get100_c4") if w not in workloads]
    for workload in workloads:
        results = {"ferrocached": [], "memcached": []}
        for _ in range(a.rounds):
            results["ferrocached"].append(run_one(FERRO, workload, a.seconds, a.mode))
            results["memcached"].append(run_one(MEMCACHED, workload, a.seconds, a.mode))
        med = medians(results)
        for name in ("ferrocached", "memcached"):
            m = med[name]
            print(f"| {workload} | {name} | {m['ops_per_sec']:.0f} | {m['cpu_us_per_op']:.2f} | {m['efficiency']:.0f} "
                  f"| {m['p50']:.0f} | {m['p99']:.0f} | {m['generator_us_per_op']:.2f} |")
        f, m = med["ferrocached"], med["memcached"]
        summary.append(f"{workload}: efficiency x{f['efficiency'] / m['efficiency']:.2f} ops/s x{f['ops_per_sec'] / m['ops_per_sec']:.2f} "
                       f"p99 {f['p99']:.0f} vs {m['p99']:.0f} us, generator CPU {f['generator_us_per_op']:.2f} vs "
                       f"{m['generator_us_per_op']:.2f} us/op (ferrocached vs memcached)")
    if cross_check:
        for concurrency, twin in ((50, "get100"), (4, "get100_c4")):
            loadgen_line = next(line for line in summary if line.startswith(twin + ":"))
            results = {"ferrocached": [], "memcached": []}
            for _ in range(a.rounds):
                results["ferrocached"].append(memcslap_one(FERRO, a.memcslap_execute, concurrency))
                results["memcached"].append(memcslap_one(MEMCACHED, a.memcslap_execute, concurrency))
            med = medians(results)
            f, m = med["ferrocached"], med["memcached"]
            for name in ("ferrocached", "memcached"):
                print(f"| get100 (memcslap, {concurrency} threads) | {name} | {med[name]['ops_per_sec']:.0f} | | "
                      f"{med[name]['efficiency']:.0f} | | | |")
            line = (f"memcslap cross-check (get, {concurrency} blocking connections, depth 1): efficiency "
                    f"x{f['efficiency'] / m['efficiency']:.2f} ops/s x{f['ops_per_sec'] / m['ops_per_sec']:.2f}")
            line += "; loadgen on the same workload: " + loadgen_line.split(": ", 1)[1].split(" p99")[0]
            summary.append(line)
    elif a.memcslap_execute > 0:
        summary.append("memcslap cross-check: skipped (memcslap not installed: apt-get install libmemcached-tools)")
    print()
    for line in summary:
        print(line)

if __name__ == "__main__":
    main()
