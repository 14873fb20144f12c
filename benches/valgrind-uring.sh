#!/usr/bin/env bash
# Builds Debian's valgrind with one change, so callgrind can count the io_uring engine:
# valgrind 3.19 runs `io_uring_enter` as a system call that cannot block, so a thread
# waiting in it keeps valgrind's lock and every other thread of the process stops (the
# accept thread never runs; later valgrind releases mark it "may block", as here).
# Installs into target/valgrind-uring (about two minutes on two cores); needs root for
# `apt-get source` (it adds a deb-src entry for the machine's own Debian suites).
#
# usage: benches/valgrind-uring.sh   then
#        VALGRIND=target/valgrind-uring/bin/valgrind ENGINE=uring benches/callgrind.sh
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=$PWD/target/valgrind-uring
if [ -x "$prefix/bin/valgrind" ]; then
    echo "$prefix/bin/valgrind"
    exit 0
fi
if ! ls /etc/apt/sources.list.d/*.sources 2>/dev/null | xargs grep -q '^Types: deb-src'; then
    sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
        >/etc/apt/sources.list.d/debian-src.sources
    apt-get update -qq
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The upstream tarball, without Debian's patches: those rename the launcher's process
# to valgrind.bin for Debian's wrapper script, and callgrind_control then looks for it.
(cd "$work" && apt-get source -qq --download-only valgrind >/dev/null 2>&1 \
    && tar xf valgrind_*.orig.tar.*)
src=$(find "$work" -maxdepth 1 -type d -name 'valgrind-*' | head -1)
wrapper="$src/coregrind/m_syswrap/syswrap-linux.c"
# The one change: after PRE(sys_io_uring_enter)'s register check, mark it may-block.
python3 - "$wrapper" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path).read()
start = text.index("PRE(sys_io_uring_enter)")
end = text.index("}", start)
body = text[start:end]
if "SfMayBlock" not in body:
    body = body.replace("const void *, sig, unsigned long, sigsz);",
                        "const void *, sig, unsigned long, sigsz);\n   *flags |= SfMayBlock;", 1)
    assert "SfMayBlock" in body, "io_uring_enter wrapper not as expected"
    text = text[:start] + body + text[end:]
    open(path, "w").write(text)
PY
(cd "$src" && ./configure -q --prefix="$prefix" >/dev/null && make -j"$(nproc)" -s >/dev/null 2>&1 \
    && make install -s >/dev/null 2>&1)
echo "$prefix/bin/valgrind"
