//! A whole connection without a socket: random bytes through parser, commands and a
//! small store. Invariants: replies are CRLF-terminated lines or value blocks, the memory
//! budget is never exceeded by item memory, and a `set` that answered STORED reads back
//! exactly what was written.
#![no_main]

use ferrocached::command::{Context, execute};
use ferrocached::config::Settings;
use ferrocached::protocol::{Frame, ReplyBuffer, Request, StorageVerb, parse};
use ferrocached::stats::{ConnCounters, ServerStats};
use ferrocached::store::{Clock, Store, StoreConfig};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let settings = Settings::default();
    let config = StoreConfig {
        memory_limit: 8 << 20,
        ..settings.store_config()
    };
    let store = Store::new(&config, Arc::new(Clock::starting_at(1_000_000_000)));
    let stats = ServerStats::default();
    let mut counters = ConnCounters::default();
    let limits = settings.limits();
    let mut rest = data;
    while let Frame::Request {
        request, consumed, ..
    } = parse(rest, &limits)
    {
        let mut out = ReplyBuffer::new();
        let mut ctx = Context {
            store: &store,
            settings: &settings,
            stats: &stats,
            counters: &mut counters,
            tls: None,
        };
        execute(&request, &mut ctx, &mut out);
        let reply = out.to_vec();
        assert!(reply.is_empty() || reply.ends_with(b"\r\n"));
        if let Request::Store {
            verb: StorageVerb::Set,
            key,
            data,
            noreply: false,
            ..
        } = &request
        {
            if reply == b"STORED\r\n" {
                let mut read = None;
                store.fetch(key, None, |item| {
                    read = Some(item.value.as_slice().to_vec())
                });
                // A negative or past exptime stores an already-expired item.
                if let Some(read) = read {
                    assert_eq!(&read[..], &data[..]);
                }
            }
        }
        assert!(store.memory_used() <= store.memory_limit() + (1 << 20));
        rest = &rest[consumed..];
    }
});
