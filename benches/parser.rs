//! Parser micro-benchmarks: a get line, a set line with a 100-byte value, a 10-key get.

use criterion::{Criterion, criterion_group, criterion_main};
use ferrocached::protocol::{Frame, Limits, parse};
use std::hint::black_box;

fn parser(c: &mut Criterion) {
    let limits = Limits::default();
    let get = b"get key:000000012345\r\n".to_vec();
    let mut set = b"set key:000000012345 0 0 100\r\n".to_vec();
    set.extend_from_slice(&[b'v'; 100]);
    set.extend_from_slice(b"\r\n");
    let mut multiget = b"get".to_vec();
    for i in 0..10 {
        multiget.extend_from_slice(format!(" key:{i:012}").as_bytes());
    }
    multiget.extend_from_slice(b"\r\n");
    for (name, input) in [("get", get), ("set_100", set), ("get_10_keys", multiget)] {
        c.bench_function(&format!("parse/{name}"), |b| {
            b.iter(|| match parse(black_box(&input), &limits) {
                Frame::Request { consumed, .. } => consumed,
                _ => unreachable!(),
            })
        });
    }
}

criterion_group!(benches, parser);
criterion_main!(benches);
