// memcached-session-manager's client, spymemcached, in text and binary mode against one
// server. Exits non-zero with a message on the first mismatch.
//
// usage: java -cp spymemcached.jar:. SpyCheck PORT text|binary

import java.net.SocketAddress;
import java.util.Arrays;
import java.util.Map;
import net.spy.memcached.AddrUtil;
import net.spy.memcached.BinaryConnectionFactory;
import net.spy.memcached.CASResponse;
import net.spy.memcached.CASValue;
import net.spy.memcached.DefaultConnectionFactory;
import net.spy.memcached.MemcachedClient;

public class SpyCheck {
    static void check(String label, Object got, Object expected) {
        if (got == null ? expected != null : !got.equals(expected)) {
            System.err.println(label + ": got " + got + ", expected " + expected);
            System.exit(1);
        }
    }

    public static void main(String[] args) throws Exception {
        String address = "127.0.0.1:" + args[0];
        boolean binary = args[1].equals("binary");
        MemcachedClient c = binary
            ? new MemcachedClient(new BinaryConnectionFactory(), AddrUtil.getAddresses(address))
            : new MemcachedClient(new DefaultConnectionFactory(), AddrUtil.getAddresses(address));
        try {
            check("flush", c.flush().get(), true);
            check("set", c.set("session-n1", 1800, "attributes").get(), true);
            check("get", c.get("session-n1"), "attributes");
            check("add lock", c.add("lock:session", 5, "locked").get(), true);
            check("add lock again", c.add("lock:session", 5, "locked").get(), false);
            check("delete lock", c.delete("lock:session").get(), true);
            check("replace", c.replace("session-n1", 1800, "v2").get(), true);
            CASValue<Object> casValue = c.gets("session-n1");
            check("cas ok", c.cas("session-n1", casValue.getCas(), "v3"), CASResponse.OK);
            check("cas stale", c.cas("session-n1", casValue.getCas(), "v4"), CASResponse.EXISTS);
            check("incr create", c.incr("counter", 1, 10), 10L);
            check("incr", c.incr("counter", 5), 15L);
            check("decr", c.decr("counter", 20), 0L);
            Map<String, Object> bulk = c.getBulk(Arrays.asList("session-n1", "missing"));
            check("bulk", bulk.get("session-n1"), "v3");
            check("bulk size", bulk.size(), 1);
            check("touch", c.touch("session-n1", 100).get(), true);
            check("delete", c.delete("session-n1").get(), true);
            check("get deleted", c.get("session-n1"), null);
            Map<SocketAddress, String> versions = c.getVersions();
            check("version", versions.values().iterator().next().startsWith("1.6."), true);
        } finally {
            c.shutdown();
        }
        System.out.println("spymemcached " + args[1] + " passed");
    }
}
