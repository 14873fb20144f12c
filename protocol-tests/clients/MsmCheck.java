// What memcached-session-manager does with its two nodes, replayed with its own client
// (spymemcached), in text or binary protocol. The Rust test drives the phases and kills
// and restarts node n1 between them.
//
// usage: java -cp spymemcached.jar:. MsmCheck PHASE N1_PORT N2_PORT text|binary
//   write    sessions on n1, backups and validity on n2, locks, concurrent updates, expiry
//   failover n1 is down: every session is read from n2's backup
//   restored n1 is back from its -e file: its sessions and validity keys are there

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import net.spy.memcached.AddrUtil;
import net.spy.memcached.BinaryConnectionFactory;
import net.spy.memcached.DefaultConnectionFactory;
import net.spy.memcached.MemcachedClient;

public class MsmCheck {
    static final int SESSIONS = 20;
    static final int THREADS = 8;
    static final int UPDATES = 25;

    static void check(String label, Object got, Object expected) {
        if (got == null ? expected != null : !got.equals(expected)) {
            System.err.println(label + ": got " + got + ", expected " + expected);
            System.exit(1);
        }
    }

    static MemcachedClient client(int port, boolean binary) throws Exception {
        String address = "127.0.0.1:" + port;
        return binary
            ? new MemcachedClient(new BinaryConnectionFactory(), AddrUtil.getAddresses(address))
            : new MemcachedClient(new DefaultConnectionFactory(), AddrUtil.getAddresses(address));
    }

    static String id(int i) {
        return "SESSION" + i + "-n1";
    }

    public static void main(String[] args) throws Exception {
        String phase = args[0];
        boolean binary = args[3].equals("binary");
        MemcachedClient n1 = phase.equals("failover") ? null : client(Integer.parseInt(args[1]), binary);
        MemcachedClient n2 = client(Integer.parseInt(args[2]), binary);
        try {
            switch (phase) {
                case "write": write(n1, n2); break;
                case "failover": failover(n2); break;
                case "restored": restored(n1); break;
                default: throw new IllegalArgumentException(phase);
            }
        } finally {
            if (n1 != null) n1.shutdown();
            n2.shutdown();
        }
        System.out.println("msm " + phase + " " + args[3] + " passed");
    }

    static void write(MemcachedClient n1, MemcachedClient n2) throws Exception {
        for (int i = 0; i < SESSIONS; i++) {
            String data = "attributes-of-" + i;
            check("session", n1.set(id(i), 1800, data).get(), true);
            check("validity", n1.set("validity:" + id(i), 1800, "v" + i).get(), true);
            check("backup", n2.set("bak:" + id(i), 1800, data).get(), true);
            check("backup validity", n2.set("bak:validity:" + id(i), 1800, "v" + i).get(), true);
        }
        // Locks: add-based, released with delete.
        check("lock", n1.add("lock:" + id(0), 5, "locked").get(), true);
        check("lock held", n1.add("lock:" + id(0), 5, "locked").get(), false);
        check("unlock", n1.delete("lock:" + id(0)).get(), true);
        // Concurrent requests on one session serialised by the lock: no lost update.
        final MemcachedClient node = n1;
        final String counter = "SESSIONCOUNT-n1";
        check("counter", n1.set(counter, 1800, "0").get(), true);
        List<Thread> threads = new ArrayList<>();
        for (int t = 0; t < THREADS; t++) {
            Thread thread = new Thread(() -> {
                try {
                    for (int u = 0; u < UPDATES; u++) {
                        while (!node.add("lock:" + counter, 5, "locked").get()) {
                            Thread.sleep(1);
                        }
                        int value = Integer.parseInt((String) node.get(counter));
                        node.set(counter, 1800, Integer.toString(value + 1)).get();
                        node.delete("lock:" + counter).get();
                    }
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            });
            threads.add(thread);
            thread.start();
        }
        for (Thread thread : threads) thread.join();
        check("no lost updates", n1.get(counter), Integer.toString(THREADS * UPDATES));
        // Session expiry by exptime.
        check("short session", n1.set("SHORT-n1", 1, "x").get(), true);
        Thread.sleep(2500);
        check("expired session", n1.get("SHORT-n1"), null);
    }

    static void failover(MemcachedClient n2) throws Exception {
        for (int i = 0; i < SESSIONS; i++) {
            check("backup read", n2.get("bak:" + id(i)), "attributes-of-" + i);
            check("backup validity read", n2.get("bak:validity:" + id(i)), "v" + i);
        }
    }

    static void restored(MemcachedClient n1) throws Exception {
        for (int i = 0; i < SESSIONS; i++) {
            check("restored session", n1.get(id(i)), "attributes-of-" + i);
            check("restored validity", n1.get("validity:" + id(i)), "v" + i);
        }
        check("restored counter", n1.get("SESSIONCOUNT-n1"), Integer.toString(THREADS * UPDATES));
    }
}
