//! Malformed input gets memcached's exact error and the connection stays in sync.

use crate::support::servers;

/// (request, reply) pairs, each sent on its own and then followed by a probe.
const CASES: &[(&[u8], &[u8])] = &[
    (b"\r\n", b"ERROR\r\n"),
    (b"x\r\n", b"ERROR\r\n"),
    (b"bogus command\r\n", b"ERROR\r\n"),
    (b"GET a\r\n", b"ERROR\r\n"),
    (b"get\r\n", b"ERROR\r\n"),
    (b"gets\r\n", b"ERROR\r\n"),
    (b"set a 0 0\r\n", b"ERROR\r\n"),
    (b"set a 0 0 1 noreply extra\r\n", b"ERROR\r\n"),
    (b"cas a 0 0 1\r\n", b"ERROR\r\n"),
    (b"incr a\r\n", b"ERROR\r\n"),
    (b"touch a\r\n", b"ERROR\r\n"),
    (b"delete\r\n", b"ERROR\r\n"),
    (b"flush_all 1 2 3\r\n", b"ERROR\r\n"),
    (
        b"set a -1 0 1\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    ),
    (
        b"set a abc 0 1\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    ),
    (
        b"set a 0 abc 1\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    ),
    (
        b"set a 0 1x 1\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    ),
    (
        b"set a 0 0 -1\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    ),
    (
        b"set a 0 0 abc\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    ),
    (
        b"set a 0 0 2147483647\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    ),
    (
        b"set a 0 0 4294967295\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    ),
    (
        b"set a 0 0 18446744073709551616\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    ),
    (
        b"cas a 0 0 1 x\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    ),
    (
        b"cas a 0 0 1 -1\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    ),
    (
        b"touch a x\r\n",
        b"CLIENT_ERROR invalid exptime argument\r\n",
    ),
    (b"gat x a\r\n", b"CLIENT_ERROR invalid exptime argument\r\n"),
    (
        b"incr a x\r\n",
        b"CLIENT_ERROR invalid numeric delta argument\r\n",
    ),
    (
        b"decr a -1\r\n",
        b"CLIENT_ERROR invalid numeric delta argument\r\n",
    ),
    (
        b"flush_all abc\r\n",
        b"CLIENT_ERROR invalid exptime argument\r\n",
    ),
    (b"stats nonsense\r\n", b"ERROR\r\n"),
    (
        b"stats detail\r\n",
        b"CLIENT_ERROR usage: stats detail on|off|dump\r\n",
    ),
    (
        b"stats detail bogus\r\n",
        b"CLIENT_ERROR usage: stats detail on|off|dump\r\n",
    ),
    (b"stats cachedump\r\n", b"CLIENT_ERROR bad command line\r\n"),
    (
        b"stats cachedump 1\r\n",
        b"CLIENT_ERROR bad command line\r\n",
    ),
    (
        b"stats cachedump x 1\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    ),
    (
        b"stats cachedump 64 1\r\n",
        b"CLIENT_ERROR Illegal slab id\r\n",
    ),
];

#[test]
fn malformed_requests_get_memcacheds_errors() {
    for server in servers(&[]) {
        let mut c = server.connect();
        for (request, reply) in CASES {
            c.roundtrip(request, reply);
            c.expect_quiet();
        }
    }
}

#[test]
fn rejected_storage_line_leaves_its_data_to_be_parsed_as_a_command() {
    for server in servers(&[]) {
        let mut c = server.connect();
        c.roundtrip(
            b"set a 0 abc 1\r\nx\r\n",
            b"CLIENT_ERROR bad command line format\r\nERROR\r\n",
        );
    }
}

#[test]
fn bad_data_chunk_resyncs_after_the_announced_length() {
    for server in servers(&[]) {
        let mut c = server.connect();
        c.roundtrip(b"set a 0 0 1\r\nx\r\n", b"STORED\r\n");
        // Five bytes arrive for three: "de" is not CRLF, then the rest is a new line.
        c.roundtrip(
            b"set a 0 0 3\r\nabcde\r\nget a\r\n",
            b"CLIENT_ERROR bad data chunk\r\nERROR\r\nVALUE a 0 1\r\nx\r\nEND\r\n",
        );
    }
}

#[test]
fn numbers_follow_memcacheds_parsing() {
    for server in servers(&[]) {
        let mut c = server.connect();
        // Flags wrap to 32 bits; a sixth storage token other than noreply is ignored.
        c.roundtrip(b"set w 4294967296 0 1\r\nx\r\n", b"STORED\r\n");
        c.roundtrip(b"get w\r\n", b"VALUE w 0 1\r\nx\r\nEND\r\n");
        c.roundtrip(b"set w 0 0 1 2\r\ny\r\n", b"STORED\r\n");
        c.roundtrip(b"get w\r\n", b"VALUE w 0 1\r\ny\r\nEND\r\n");
        c.roundtrip(b"set w -0 0 1\r\nz\r\n", b"STORED\r\n");
        c.roundtrip(b"flush_all -1\r\n", b"OK\r\n");
        c.roundtrip(b"get w\r\n", b"END\r\n");
    }
}

#[test]
fn long_lines_close_the_connection_unless_they_are_gets() {
    for server in servers(&[]) {
        // A multiget line far beyond 2048 bytes is answered.
        let mut c = server.connect();
        c.roundtrip(b"set mg 0 0 1\r\nx\r\n", b"STORED\r\n");
        let mut line = b"get".to_vec();
        for i in 0..2000 {
            line.extend_from_slice(format!(" missing{i}").as_bytes());
        }
        line.extend_from_slice(b" mg\r\n");
        c.roundtrip(&line, b"VALUE mg 0 1\r\nx\r\nEND\r\n");
        // Any other line over 2048 bytes without a newline closes the connection.
        let mut c = server.connect();
        c.send(&vec![b'x'; 5000]);
        assert!(c.is_closed(), "[{}] long junk line closes", c.label);
        // A long line whose newline arrived with it is parsed, not dropped.
        let mut c = server.connect();
        let mut junk = vec![b'x'; 3000];
        junk.extend_from_slice(b"\r\nversion\r\n");
        c.send(&junk);
        c.expect(b"ERROR\r\n");
        assert!(c.read_line().starts_with(b"VERSION "));
        // So does an HTTP request.
        let mut c = server.connect();
        c.send(b"GET / HTTP/1.1\r\n");
        assert!(c.is_closed(), "[{}] HTTP closes", c.label);
        // The server is fine afterwards.
        let mut c = server.connect();
        c.roundtrip(b"get mg\r\n", b"VALUE mg 0 1\r\nx\r\nEND\r\n");
    }
}

#[test]
fn quit_closes_and_drops_what_follows() {
    for server in servers(&[]) {
        let mut c = server.connect();
        c.send(b"set qq 0 0 1\r\nx\r\nquit\r\nset qq 0 0 1\r\ny\r\n");
        c.expect(b"STORED\r\n");
        assert!(c.is_closed(), "[{}] quit closes", c.label);
        let mut c = server.connect();
        c.roundtrip(b"get qq\r\n", b"VALUE qq 0 1\r\nx\r\nEND\r\n");
    }
}
