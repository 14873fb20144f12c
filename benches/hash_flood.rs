//! Collision flood against the index hash (issue #10): what a client without the
//! per-process seed achieves by sending keys that collide under a fixed-seed variant of
//! the hash, for foldhash's quality variant (seeded: the store's `KeyHasher`) and
//! SipHash-1-3 (std's `RandomState`), next to the same keys against an unkeyed table
//! (what the flood does when it hits).
//!
//! `cargo bench --bench hash_flood` prints, per hasher: the largest number of flood keys
//! sharing one home bucket in a table of 2^17 buckets, and ns per lookup of a flood key
//! and of an ordinary key. Figures are ratios to compare in one run, not absolutes.

use hashbrown::HashTable;
use std::hash::BuildHasher;
use std::hint::black_box;
use std::time::Instant;

/// Ordinary keys in the table (it then has 2^17 buckets).
const ORDINARY: usize = 100_000;
/// Keys the attacker sends.
const FLOOD: usize = 2_000;
/// Low hash bits the flood keys share under the attacker's fixed seed.
const BUCKET_BITS: u32 = 17;

fn ordinary_keys() -> Vec<Vec<u8>> {
    (0..ORDINARY)
        .map(|i| format!("session:{i:012}").into_bytes())
        .collect()
}

/// Keys whose hash under foldhash with a fixed (default) seed all land in bucket 0 of any
/// table up to 2^BUCKET_BITS buckets: found by brute force, as an attacker would.
fn flood_keys() -> Vec<Vec<u8>> {
    let fixed = foldhash::quality::FixedState::default();
    let mask = (1u64 << BUCKET_BITS) - 1;
    let mut found = Vec::with_capacity(FLOOD);
    // "flood:" and 16 hex digits of a counter, updated in place.
    let mut key = *b"flood:0000000000000000";
    let mut candidate = 0u64;
    while found.len() < FLOOD {
        for (digit, slot) in key[6..].iter_mut().rev().enumerate() {
            *slot = b"0123456789abcdef"[(candidate >> (4 * digit)) as usize & 15];
        }
        if fixed.hash_one(&key[..]) & mask == 0 {
            found.push(key.to_vec());
        }
        candidate += 1;
    }
    found
}

struct Figures {
    largest_cluster: usize,
    flood_lookup_ns: f64,
    ordinary_lookup_ns: f64,
}

fn measure(hasher: &impl BuildHasher, ordinary: &[Vec<u8>], flood: &[Vec<u8>]) -> Figures {
    let all: Vec<&[u8]> = ordinary.iter().chain(flood).map(Vec::as_slice).collect();
    let mut table: HashTable<u32> = HashTable::with_capacity(all.len());
    for (index, key) in all.iter().enumerate() {
        let hash = hasher.hash_one(key);
        table.insert_unique(hash, index as u32, |&other| {
            hasher.hash_one(all[other as usize])
        });
    }
    let buckets = (table.capacity() * 8 / 7).next_power_of_two() as u64;
    let mut homes = std::collections::HashMap::new();
    for key in flood {
        *homes
            .entry(hasher.hash_one(key.as_slice()) & (buckets - 1))
            .or_insert(0) += 1;
    }
    let largest_cluster = homes.values().copied().max().unwrap_or(0);
    let lookup_ns = |keys: &[Vec<u8>], rounds: usize| {
        let started = Instant::now();
        for _ in 0..rounds {
            for key in keys {
                let hash = hasher.hash_one(key.as_slice());
                black_box(table.find(hash, |&index| all[index as usize] == key.as_slice()));
            }
        }
        started.elapsed().as_nanos() as f64 / (keys.len() * rounds) as f64
    };
    // A first pass warms the caches; the second is reported.
    lookup_ns(ordinary, 1);
    lookup_ns(flood, 1);
    Figures {
        largest_cluster,
        flood_lookup_ns: lookup_ns(flood, 20),
        ordinary_lookup_ns: lookup_ns(ordinary, 10),
    }
}

fn main() {
    let ordinary = ordinary_keys();
    let started = Instant::now();
    let flood = flood_keys();
    println!(
        "{FLOOD} flood keys sharing {BUCKET_BITS} low bits under foldhash's fixed seed, found in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let report = |name: &str, figures: Figures| {
        println!(
            "{name:<34} largest cluster {:>5}  flood lookup {:>8.1} ns  ordinary lookup {:>5.1} ns",
            figures.largest_cluster, figures.flood_lookup_ns, figures.ordinary_lookup_ns
        );
    };
    report(
        "foldhash, fixed seed (unkeyed)",
        measure(&foldhash::quality::FixedState::default(), &ordinary, &flood),
    );
    report(
        "foldhash, random seed",
        measure(
            &foldhash::quality::RandomState::default(),
            &ordinary,
            &flood,
        ),
    );
    report(
        "SipHash-1-3 (std RandomState)",
        measure(&std::hash::RandomState::new(), &ordinary, &flood),
    );
}
