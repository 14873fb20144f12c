use super::*;
use crate::command::session::Session;
use crate::store::{Clock, Store};
use std::sync::Arc;

/// Runs raw protocol bytes through the request loop, returning the reply bytes.
fn run(store: &Store, settings: &Settings, input: &[u8]) -> Vec<u8> {
    let stats = ServerStats::default();
    let mut counters = ConnCounters::default();
    let mut out = ReplyBuffer::new();
    let mut ctx = Context {
        store,
        settings,
        stats: &stats,
        counters: &mut counters,
        tls: None,
        reply_window: crate::buffers::ReplyWindow::UNBOUNDED,
    };
    let mut session = Session::stream(settings, 0);
    session.process(input, &mut ctx, &settings.limits(), &mut out);
    out.to_vec()
}

fn fixture() -> (Store, Settings) {
    let settings = Settings::default();
    let store = Store::new(
        &settings.store_config(),
        Arc::new(Clock::starting_at(1_000_000_000)),
    );
    (store, settings)
}

#[test]
fn get_replies_with_value_blocks() {
    let (store, settings) = fixture();
    assert_eq!(
        run(&store, &settings, b"set a 3 0 2\r\nhi\r\n"),
        b"STORED\r\n"
    );
    assert_eq!(
        run(&store, &settings, b"get a b a\r\n"),
        b"VALUE a 3 2\r\nhi\r\nVALUE a 3 2\r\nhi\r\nEND\r\n"
    );
}

#[test]
fn large_values_are_queued_without_a_copy() {
    let (store, settings) = fixture();
    let value = vec![b'x'; 100_000];
    let mut request = b"set big 0 0 100000\r\n".to_vec();
    request.extend_from_slice(&value);
    request.extend_from_slice(b"\r\n");
    run(&store, &settings, &request);
    let reply = run(&store, &settings, b"get big\r\n");
    assert_eq!(&reply[..20], b"VALUE big 0 100000\r\n");
    assert_eq!(&reply[20..100_020], &value[..]);
    assert_eq!(&reply[100_020..], b"\r\nEND\r\n");
}

#[test]
fn noreply_and_errors() {
    let (store, settings) = fixture();
    assert_eq!(run(&store, &settings, b"set a 0 0 1 noreply\r\nx\r\n"), b"");
    assert_eq!(
        run(&store, &settings, b"incr a 1\r\n"),
        b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
    );
    assert_eq!(
        run(&store, &settings, b"shutdown\r\n"),
        b"ERROR: shutdown not enabled\r\n"
    );
    let mut disabled = settings.clone();
    disabled.flush_enabled = false;
    assert_eq!(
        run(&store, &disabled, b"flush_all\r\n"),
        b"CLIENT_ERROR flush_all not allowed\r\n"
    );
}

#[test]
fn time_driven_expiry_through_commands() {
    let (store, settings) = fixture();
    store.clock().set_relative(100);
    run(&store, &settings, b"set t 0 5 1\r\nx\r\n");
    assert_eq!(
        run(&store, &settings, b"get t\r\n"),
        b"VALUE t 0 1\r\nx\r\nEND\r\n"
    );
    store.clock().advance(5);
    assert_eq!(run(&store, &settings, b"get t\r\n"), b"END\r\n");
}

#[test]
fn flush_all_with_a_delay_uses_the_clock() {
    let (store, settings) = fixture();
    store.clock().set_relative(100);
    run(&store, &settings, b"set f 0 0 1\r\nx\r\nflush_all 10\r\n");
    store.clock().advance(5);
    assert_eq!(
        run(&store, &settings, b"get f\r\n"),
        b"VALUE f 0 1\r\nx\r\nEND\r\n"
    );
    store.clock().advance(5);
    assert_eq!(run(&store, &settings, b"get f\r\n"), b"END\r\n");
}
