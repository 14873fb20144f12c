//! A whole connection without a socket: random bytes through parser, commands and a
//! small store. Invariants: replies are CRLF-terminated lines or value blocks, the memory
//! budget is never exceeded by item memory, a `set` that answered STORED reads back
//! exactly what was written, and a get answered in small reply windows (paused and
//! resumed on its remaining keys) sends exactly what one unbounded reply would.
#![no_main]

use ferrocached::buffers::ReplyWindow;
use ferrocached::command::{Context, Flow, execute};
use ferrocached::config::Settings;
use ferrocached::protocol::{
    Frame, GetKeys, Keys, ReplyBuffer, ReplyStyle, Request, StoreMode, parse, text_get,
};
use ferrocached::stats::{ConnCounters, ServerStats};
use ferrocached::store::{Clock, Store, StoreConfig};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

/// Small enough that multigets of fuzzed values pause often.
const WINDOW: ReplyWindow = ReplyWindow {
    bytes: 4096,
    resumable: true,
};

/// The same get-family request on the keys from `resume_at` on.
fn rest_of<'a>(request: &Request<'a>, resume_at: usize) -> Request<'a> {
    match *request {
        Request::Get {
            keys: GetKeys::List(keys),
            with_cas,
            touch,
            ..
        } => text_get(Keys(&keys.0[resume_at..]), with_cas, touch),
        ref other => panic!("only text gets pause, not {other:?}"),
    }
}

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
        let unbounded = matches!(
            request,
            Request::Get {
                keys: GetKeys::List(_),
                touch: None,
                ..
            }
        )
        .then(|| {
            let mut out = ReplyBuffer::new();
            let mut ctx = Context {
                store: &store,
                settings: &settings,
                stats: &stats,
                counters: &mut counters,
                tls: None,
                reply_window: ReplyWindow::UNBOUNDED,
            };
            execute(&request, &mut ctx, &mut out);
            out.to_vec()
        });
        let mut reply = Vec::new();
        let mut current = request.clone();
        loop {
            let mut out = ReplyBuffer::new();
            let mut ctx = Context {
                store: &store,
                settings: &settings,
                stats: &stats,
                counters: &mut counters,
                tls: None,
                reply_window: WINDOW,
            };
            let flow = execute(&current, &mut ctx, &mut out);
            // A window holds at most one value beyond its size.
            assert!(out.len() <= WINDOW.bytes + settings.item_size_max + 512);
            reply.extend_from_slice(&out.to_vec());
            match flow {
                Flow::MoreKeys { resume_at } => current = rest_of(&current, resume_at),
                _ => break,
            }
        }
        if let Some(unbounded) = unbounded {
            assert_eq!(reply, unbounded, "windows add up to the whole reply");
        }
        assert!(reply.is_empty() || reply.ends_with(b"\r\n"));
        if let Request::Store {
            mode: StoreMode::Set,
            compare_cas: None,
            key,
            data,
            reply: ReplyStyle::Text { noreply: false },
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
