//! Store micro-benchmarks without a socket or parser: get hit, set, and set with
//! eviction churn (memory full, every set evicts).

use criterion::{Criterion, criterion_group, criterion_main};
use ferrocached::store::{Clock, Store, StoreConfig, StoreMode};
use std::hint::black_box;
use std::sync::Arc;

fn keys(count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| format!("key:{i:012}").into_bytes())
        .collect()
}

fn store(c: &mut Criterion) {
    let value = [b'v'; 100];
    let config = StoreConfig {
        memory_limit: 1 << 30,
        ..StoreConfig::default()
    };
    let store = Store::new(&config, Arc::new(Clock::new()));
    let keys = keys(100_000);
    for key in &keys {
        store.store(StoreMode::Set, key, 0, 0, &value);
    }
    let mut i = 0;
    c.bench_function("store/get_hit", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            let mut length = 0;
            store.fetch(black_box(&keys[i]), None, |item| {
                length = item.value.as_slice().len()
            });
            length
        })
    });
    c.bench_function("store/set", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            store.store(StoreMode::Set, black_box(&keys[i]), 0, 0, &value)
        })
    });
    let small = StoreConfig {
        memory_limit: 8 << 20,
        ..StoreConfig::default()
    };
    let churn = Store::new(&small, Arc::new(Clock::new()));
    let many = self::keys(1_000_000);
    let mut j = 0;
    c.bench_function("store/set_evicting", |b| {
        b.iter(|| {
            j = (j + 1) % many.len();
            churn.store(StoreMode::Set, black_box(&many[j]), 0, 0, &value)
        })
    });
}

criterion_group!(benches, store);
criterion_main!(benches);
