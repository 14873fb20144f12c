//! Load generator for memcached-protocol servers: many connections, a pipeline depth,
//! a get/set mix over a fixed key space, multigets, and latency percentiles from an HDR
//! histogram. Deterministic: the same arguments send the same requests.
//!
//! ```text
//! cargo run --release --example loadgen -- --server 127.0.0.1:11211 \
//!     --connections 50 --pipeline 1 --get-ratio 0.9 --keys 100000 --value-size 100 \
//!     --duration 10
//! ```
//! Prints one line: `ops=... ops_per_sec=... p50_us=... p99_us=... hits=... misses=...`.

use hdrhistogram::Histogram;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Clone)]
struct Options {
    server: String,
    connections: usize,
    pipeline: usize,
    get_ratio: f64,
    keys: u64,
    value_size: usize,
    multiget: usize,
    duration: Duration,
    requests: Option<u64>,
    prefill: bool,
}

fn parse_options() -> Options {
    let mut options = Options {
        server: "127.0.0.1:11211".into(),
        connections: 50,
        pipeline: 1,
        get_ratio: 0.9,
        keys: 100_000,
        value_size: 100,
        multiget: 1,
        duration: Duration::from_secs(10),
        requests: None,
        prefill: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut index = 0;
    while index < args.len() {
        let value = args.get(index + 1).cloned().unwrap_or_default();
        match args[index].as_str() {
            "--server" => options.server = value,
            "--connections" => options.connections = value.parse().expect("--connections"),
            "--pipeline" => options.pipeline = value.parse().expect("--pipeline"),
            "--get-ratio" => options.get_ratio = value.parse().expect("--get-ratio"),
            "--keys" => options.keys = value.parse().expect("--keys"),
            "--value-size" => options.value_size = value.parse().expect("--value-size"),
            "--multiget" => options.multiget = value.parse().expect("--multiget"),
            "--duration" => {
                options.duration = Duration::from_secs_f64(value.parse().expect("--duration"))
            }
            "--requests" => options.requests = Some(value.parse().expect("--requests")),
            "--prefill" => {
                options.prefill = true;
                index += 1;
                continue;
            }
            other => panic!("unknown option {other}"),
        }
        index += 2;
    }
    options
}

/// xorshift64*: cheap and deterministic per connection.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[derive(Clone, Copy)]
enum Expect {
    Get,
    Stored,
}

#[derive(Default)]
struct Outcome {
    ops: u64,
    hits: u64,
    misses: u64,
    histogram: Option<Histogram<u64>>,
}

fn key(index: u64) -> String {
    format!("key:{index:012}")
}

/// Reads replies for `expected` requests from `buffer`/`socket`.
async fn read_replies(
    socket: &mut TcpStream,
    buffer: &mut Vec<u8>,
    expected: &[Expect],
    outcome: &mut Outcome,
) -> std::io::Result<()> {
    let mut position = 0;
    for expect in expected {
        loop {
            match parse_reply(&buffer[position..], *expect) {
                Some((consumed, hits, misses)) => {
                    position += consumed;
                    outcome.hits += hits;
                    outcome.misses += misses;
                    break;
                }
                None => {
                    let mut chunk = [0u8; 65536];
                    let count = socket.read(&mut chunk).await?;
                    if count == 0 {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                    buffer.extend_from_slice(&chunk[..count]);
                }
            }
        }
    }
    buffer.drain(..position);
    Ok(())
}

/// One complete reply at the front of `data`: (bytes, hits, misses).
fn parse_reply(data: &[u8], expect: Expect) -> Option<(usize, u64, u64)> {
    let line_end = |from: usize| {
        data[from..]
            .windows(2)
            .position(|pair| pair == b"\r\n")
            .map(|offset| from + offset + 2)
    };
    match expect {
        Expect::Stored => line_end(0).map(|end| (end, 0, 0)),
        Expect::Get => {
            let mut at = 0;
            let mut hits = 0;
            loop {
                let end = line_end(at)?;
                let line = &data[at..end - 2];
                if line == b"END" {
                    return Some((end, hits, 0));
                }
                let length: usize = std::str::from_utf8(line)
                    .ok()?
                    .split(' ')
                    .nth(3)?
                    .parse()
                    .ok()?;
                at = end + length + 2;
                if data.len() < at {
                    return None;
                }
                hits += 1;
            }
        }
    }
}

async fn connection(options: Options, id: usize, deadline: Instant) -> std::io::Result<Outcome> {
    let mut socket = TcpStream::connect(&options.server).await?;
    socket.set_nodelay(true)?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (id as u64 + 1).wrapping_mul(0x1000_0000_01B3));
    let value = vec![b'v'; options.value_size];
    let mut outcome = Outcome {
        histogram: Some(Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram")),
        ..Outcome::default()
    };
    let mut request = Vec::with_capacity(64 * 1024);
    let mut expected = Vec::with_capacity(options.pipeline);
    let mut buffer = Vec::with_capacity(64 * 1024);
    let per_connection = options
        .requests
        .map(|total| total / options.connections as u64);
    loop {
        if Instant::now() >= deadline || per_connection.is_some_and(|limit| outcome.ops >= limit) {
            break;
        }
        request.clear();
        expected.clear();
        for _ in 0..options.pipeline {
            let roll = (rng.next() % 10_000) as f64 / 10_000.0;
            if roll < options.get_ratio {
                request.extend_from_slice(b"get");
                for _ in 0..options.multiget {
                    request.push(b' ');
                    request.extend_from_slice(key(rng.next() % options.keys).as_bytes());
                }
                request.extend_from_slice(b"\r\n");
                expected.push(Expect::Get);
            } else {
                let key = key(rng.next() % options.keys);
                request.extend_from_slice(
                    format!("set {key} 0 0 {}\r\n", options.value_size).as_bytes(),
                );
                request.extend_from_slice(&value);
                request.extend_from_slice(b"\r\n");
                expected.push(Expect::Stored);
            }
        }
        let started = Instant::now();
        socket.write_all(&request).await?;
        read_replies(&mut socket, &mut buffer, &expected, &mut outcome).await?;
        let micros = started.elapsed().as_micros().max(1) as u64;
        if let Some(histogram) = outcome.histogram.as_mut() {
            histogram.saturating_record_n(micros, expected.len() as u64);
        }
        outcome.ops += expected.len() as u64;
    }
    Ok(outcome)
}

async fn prefill(options: &Options) -> std::io::Result<()> {
    let mut socket = TcpStream::connect(&options.server).await?;
    let value = vec![b'v'; options.value_size];
    let mut batch = Vec::new();
    for index in 0..options.keys {
        batch.extend_from_slice(
            format!("set {} 0 0 {} noreply\r\n", key(index), options.value_size).as_bytes(),
        );
        batch.extend_from_slice(&value);
        batch.extend_from_slice(b"\r\n");
        if batch.len() > 256 * 1024 {
            socket.write_all(&batch).await?;
            batch.clear();
        }
    }
    batch.extend_from_slice(b"version\r\n");
    socket.write_all(&batch).await?;
    let mut reply = Vec::new();
    while !reply.ends_with(b"\r\n") {
        let mut chunk = [0u8; 256];
        let count = socket.read(&mut chunk).await?;
        if count == 0 {
            break;
        }
        reply.extend_from_slice(&chunk[..count]);
    }
    Ok(())
}

fn main() {
    let options = parse_options();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        if options.prefill {
            prefill(&options).await.expect("prefill");
            println!("prefilled {} keys", options.keys);
            return;
        }
        let started = Instant::now();
        let deadline = started + options.duration;
        let tasks: Vec<_> = (0..options.connections)
            .map(|id| tokio::spawn(connection(options.clone(), id, deadline)))
            .collect();
        let mut total = Outcome {
            histogram: Some(Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram")),
            ..Outcome::default()
        };
        for task in tasks {
            let outcome = task.await.expect("task").expect("connection");
            total.ops += outcome.ops;
            total.hits += outcome.hits;
            total.misses += outcome.misses;
            if let (Some(all), Some(one)) = (total.histogram.as_mut(), outcome.histogram.as_ref()) {
                all.add(one).expect("histogram add");
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        let histogram = total.histogram.expect("histogram");
        println!(
            "ops={} seconds={:.3} ops_per_sec={:.0} p50_us={} p99_us={} hits={} misses={}",
            total.ops,
            elapsed,
            total.ops as f64 / elapsed,
            histogram.value_at_quantile(0.50),
            histogram.value_at_quantile(0.99),
            total.hits,
            total.misses
        );
    });
}
