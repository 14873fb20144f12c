#!/usr/bin/env bash
# User-space instructions per request, counted by callgrind (repeatable on a noisy
# machine, unlike time). One connection, 100,000 deterministic requests, one in flight,
# for a server started with -t 1. Counters are zeroed after a prefill and dumped after
# the load, so startup is not counted.
#
# Debian's valgrind 3.19 stops every other thread while one waits in io_uring_enter, so
# ferrocached's io_uring engine needs the valgrind benches/valgrind-uring.sh builds into
# target/valgrind-uring; with it this script measures io_uring, without it epoll
# (ENGINE=epoll|uring and VALGRIND=path choose by hand).
#
# usage: [ENGINE=epoll|uring] [VALGRIND=path] benches/callgrind.sh [ferrocached|memcached]
#        (default: both servers)
# Prints one line per server and operation, then (for both) one summary line:
# `callgrind: get ferrocached N memcached M (xR), set ...` in instructions per request.
#
# memcached sets its descriptor limit's soft and hard values both to -c; valgrind only
# lets a client set the hard value it reports (the shell's limit less the 12 descriptors
# valgrind keeps for itself), so each server runs under `ulimit -n` of -c + 12.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin ferrocached --example loadgen
LOADGEN=${LOADGEN:-target/release/examples/loadgen}
# io_uring (ferrocached's engine wherever each worker has a CPU of its own) when the
# valgrind that can run it has been built, else epoll.
if [ -z "${VALGRIND:-}" ] && [ -x target/valgrind-uring/bin/valgrind ]; then
    VALGRIND=$PWD/target/valgrind-uring/bin/valgrind
fi
VALGRIND=${VALGRIND:-valgrind}
if [ -z "${ENGINE:-}" ]; then
    ENGINE=epoll
    case $VALGRIND in *valgrind-uring*) ENGINE=uring ;; esac
fi
REQUESTS=100000
CONNECTIONS=512
out=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$out"' EXIT
echo "callgrind output in $out"

measure() { # server-name binary op get-ratio
    local name=$1 binary=$2 op=$3 ratio=$4 port extra=()
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    [ "$(id -u)" = 0 ] && extra=(-u root)
    [ "$name" = ferrocached ] && extra+=(-o "io_engine=$ENGINE")
    (ulimit -n $((CONNECTIONS + 12)) && exec "$VALGRIND" --tool=callgrind \
        --callgrind-out-file="$out/$name.$op.%p" "$binary" "${extra[@]}" -t 1 \
        -c "$CONNECTIONS" -p "$port" -l 127.0.0.1 -U 0 -m 1024 >/dev/null 2>&1) &
    local pid=$!
    for _ in $(seq 200); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1',$port))" 2>/dev/null && break
        sleep 0.1
    done
    "$LOADGEN" --server "127.0.0.1:$port" --prefill --keys 10000 --value-size 100 >/dev/null
    "${VALGRIND%valgrind}callgrind_control" -z "$pid" >/dev/null 2>&1
    "$LOADGEN" --server "127.0.0.1:$port" --connections 1 --pipeline 1 --keys 10000 \
        --value-size 100 --get-ratio "$ratio" --requests "$REQUESTS" --duration 600 >/dev/null
    "${VALGRIND%valgrind}callgrind_control" -d "$pid" >/dev/null 2>&1
    sleep 1
    kill "$pid"; wait "$pid" 2>/dev/null || true
    # The dump taken right after the load holds exactly the load's instructions.
    local total
    total=$(grep -h '^summary:' $(ls -t "$out"/$name.$op.*.1 2>/dev/null | head -1) | awk '{print $2}')
    echo "$name $op: $((total / REQUESTS)) instructions/request ($total over $REQUESTS)"
    echo "$name $op $((total / REQUESTS))" >>"$out/figures"
}

figure() { awk -v s="$1" -v o="$2" '$1 == s && $2 == o {print $3}' "$out/figures"; }

for server in ${1:-ferrocached memcached}; do
    binary=target/release/ferrocached
    [ "$server" = memcached ] && binary=${MEMCACHED_BIN:-/usr/bin/memcached}
    measure "$server" "$binary" get 1.0
    measure "$server" "$binary" set 0.0
done
if [ -z "${1:-}" ]; then
    summary="callgrind:"
    for op in get set; do
        f=$(figure ferrocached $op) m=$(figure memcached $op)
        summary+=" $op ferrocached $f memcached $m (x$(awk -v f="$f" -v m="$m" 'BEGIN {printf "%.2f", f / m}'));"
    done
    echo "${summary%;} instructions/request, user space, 1 connection, depth 1, ferrocached on $ENGINE"
fi
