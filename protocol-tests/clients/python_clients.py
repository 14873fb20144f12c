#!/usr/bin/env python3
"""Real Python clients against one server: pymemcache (text protocol) and pylibmc
(libmemcached, binary protocol). Exits non-zero with a message on the first mismatch.

usage: python_clients.py PORT
"""
import sys

port = int(sys.argv[1])
address = ("127.0.0.1", port)


def check(label, got, expected):
    if got != expected:
        sys.exit(f"{label}: got {got!r}, expected {expected!r}")


def pymemcache_text():
    from pymemcache.client.base import Client

    c = Client(address, connect_timeout=5, timeout=5)
    c.flush_all()
    check("set", c.set("pk", b"value", expire=0, noreply=False), True)
    check("get", c.get("pk"), b"value")
    check("add existing", c.add("pk", b"x", noreply=False), False)
    check("replace", c.replace("pk", b"v2", noreply=False), True)
    check("append", c.append("pk", b"+", noreply=False), True)
    check("prepend", c.prepend("pk", b"-", noreply=False), True)
    check("get after edits", c.get("pk"), b"-v2+")
    value, cas = c.gets("pk")
    check("cas ok", c.cas("pk", b"new", cas, noreply=False), True)
    check("cas stale", c.cas("pk", b"newer", cas, noreply=False), False)
    c.set("n", b"10", noreply=False)
    check("incr", c.incr("n", 5), 15)
    check("decr", c.decr("n", 100), 0)
    check("get_many", c.get_many(["pk", "n", "missing"]), {"pk": b"new", "n": b"0 "})
    check("touch", c.touch("pk", 100, noreply=False), True)
    check("delete", c.delete("pk", noreply=False), True)
    check("delete missing", c.delete("pk", noreply=False), False)
    check("version", c.version().startswith(b"1.6."), True)
    stats = c.stats()
    check("stats has curr_items", b"curr_items" in stats, True)
    c.close()


def pylibmc_binary():
    import pylibmc

    c = pylibmc.Client([f"127.0.0.1:{port}"], binary=True, behaviors={"cas": True})
    c.flush_all()
    check("set", c.set("bk", "value"), True)
    check("get", c.get("bk"), "value")
    check("add existing", c.add("bk", "x"), False)
    check("add new", c.add("bk2", "y"), True)
    check("get_multi", c.get_multi(["bk", "bk2", "missing"]), {"bk": "value", "bk2": "y"})
    value, cas = c.gets("bk")
    check("cas ok", c.cas("bk", "z", cas), True)
    check("cas stale", c.cas("bk", "w", cas), False)
    c.set("cnt", 1)
    check("incr", c.incr("cnt", 41), 42)
    check("decr", c.decr("cnt", 50), 0)
    check("append", c.append("bk", "!"), True)
    check("get appended", c.get("bk"), "z!")
    check("delete", c.delete("bk"), True)
    check("get deleted", c.get("bk"), None)
    big = "x" * 500_000
    check("set large", c.set("large", big), True)
    check("get large", c.get("large"), big)


pymemcache_text()
pylibmc_binary()
print("python clients: pymemcache text and pylibmc binary passed")
