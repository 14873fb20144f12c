//! Load generator for memcached-protocol servers: many connections, a pipeline depth,
//! a get/set mix over a fixed key space, multigets, and latency percentiles from an HDR
//! histogram. Deterministic: the same arguments send the same requests.
//!
//! ```text
//! cargo run --release --example loadgen -- --server 127.0.0.1:11211 \
//!     --connections 50 --pipeline 1 --get-ratio 0.9 --keys 100000 --value-size 100 \
//!     --duration 10 [--mode window|lockstep]
//! ```
//! Prints one line: `ops=... ops_per_sec=... p50_us=... p99_us=... hits=... misses=...`.
//!
//! Two ways to drive a pipeline of depth N on each connection:
//! - `window` (the default, as memtier_benchmark's `--pipeline` does): keep N requests in
//!   flight; every reply that arrives is answered with a new request at once, all the
//!   requests freed by one read going out in one write. The server never waits for the
//!   slowest reply of a batch, and each request's latency runs from its own send.
//! - `lockstep`: write N requests, wait for all N replies, repeat. A server that sends
//!   each reply in a syscall of its own (memcached 1.6 flushes after every `get`) wakes
//!   the generator N times per batch and then idles until the whole batch is read; this
//!   mode is kept to show that effect (see README "Performance").

use hdrhistogram::Histogram;
use std::collections::VecDeque;
use std::io::Write;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How a connection keeps its pipeline full; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Window,
    Lockstep,
}

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
    mode: Mode,
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
        mode: Mode::Window,
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
            "--mode" => {
                options.mode = match value.as_str() {
                    "window" => Mode::Window,
                    "lockstep" => Mode::Lockstep,
                    other => panic!("--mode window|lockstep, not {other}"),
                }
            }
            "--prefill" => {
                options.prefill = true;
                index += 1;
                continue;
            }
            other => panic!("unknown option {other}"),
        }
        index += 2;
    }
    assert!(options.pipeline >= 1, "--pipeline must be at least 1");
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

/// The reply a request in flight waits for.
#[derive(Clone, Copy)]
enum Expect {
    /// A `get` of this many keys.
    Get(usize),
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

/// One complete reply at the front of `data`: (bytes, hits, misses).
fn parse_reply(data: &[u8], expect: Expect) -> Option<(usize, u64, u64)> {
    let line_end = |from: usize| memchr::memchr(b'\n', &data[from..]).map(|at| from + at + 1);
    match expect {
        Expect::Stored => line_end(0).map(|end| (end, 0, 0)),
        Expect::Get(keys) => {
            let mut at = 0;
            let mut hits = 0;
            loop {
                let end = line_end(at)?;
                let line = &data[at..end - 2];
                if line == b"END" {
                    return Some((end, hits, keys as u64 - hits));
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

/// Per-connection request source: the deterministic request stream and what each
/// request in flight waits for, with its send time.
struct Generator {
    rng: Rng,
    value: Vec<u8>,
    in_flight: VecDeque<(Expect, Instant)>,
}

impl Generator {
    /// Appends one request to `request` and remembers it as sent at `now`.
    fn push(&mut self, options: &Options, request: &mut Vec<u8>, now: Instant) {
        let roll = (self.rng.next() % 10_000) as f64 / 10_000.0;
        if roll < options.get_ratio {
            request.extend_from_slice(b"get");
            for _ in 0..options.multiget {
                write!(request, " key:{:012}", self.rng.next() % options.keys).expect("vec");
            }
            request.extend_from_slice(b"\r\n");
            self.in_flight
                .push_back((Expect::Get(options.multiget), now));
        } else {
            let index = self.rng.next() % options.keys;
            write!(
                request,
                "set key:{index:012} 0 0 {}\r\n",
                options.value_size
            )
            .expect("vec");
            request.extend_from_slice(&self.value);
            request.extend_from_slice(b"\r\n");
            self.in_flight.push_back((Expect::Stored, now));
        }
    }
}

async fn connection(options: Options, id: usize, deadline: Instant) -> std::io::Result<Outcome> {
    let mut socket = TcpStream::connect(&options.server).await?;
    socket.set_nodelay(true)?;
    let mut generator = Generator {
        rng: Rng(0x9E37_79B9_7F4A_7C15 ^ (id as u64 + 1).wrapping_mul(0x1000_0000_01B3)),
        value: vec![b'v'; options.value_size],
        in_flight: VecDeque::with_capacity(options.pipeline),
    };
    let mut outcome = Outcome {
        histogram: Some(Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram")),
        ..Outcome::default()
    };
    let limit = options
        .requests
        .map(|total| total / options.connections as u64);
    let mut sent = 0u64;
    let may_send = |sent: u64, now: Instant| now < deadline && limit.is_none_or(|l| sent < l);
    let mut request = Vec::with_capacity(64 * 1024);
    let mut buffer = vec![0u8; 256 * 1024];
    let (mut start, mut end) = (0usize, 0usize);
    loop {
        // Fill the window: all of it at start and in lockstep once a batch is done; in
        // window mode one new request per reply just read.
        let now = Instant::now();
        request.clear();
        let refill = options.mode == Mode::Window || generator.in_flight.is_empty();
        while refill && generator.in_flight.len() < options.pipeline && may_send(sent, now) {
            generator.push(&options, &mut request, now);
            sent += 1;
        }
        if !request.is_empty() {
            socket.write_all(&request).await?;
        }
        if generator.in_flight.is_empty() {
            break;
        }
        // Read at least one complete reply.
        let mut completed = 0;
        while completed == 0 {
            if end == buffer.len() {
                buffer.copy_within(start..end, 0);
                end -= start;
                start = 0;
                if end == buffer.len() {
                    buffer.resize(buffer.len() * 2, 0);
                }
            }
            let count = socket.read(&mut buffer[end..]).await?;
            if count == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            end += count;
            let now = Instant::now();
            while let Some(&(expect, sent_at)) = generator.in_flight.front() {
                let Some((consumed, hits, misses)) = parse_reply(&buffer[start..end], expect)
                else {
                    break;
                };
                start += consumed;
                generator.in_flight.pop_front();
                outcome.hits += hits;
                outcome.misses += misses;
                outcome.ops += 1;
                completed += 1;
                if let Some(histogram) = outcome.histogram.as_mut() {
                    let micros = now.duration_since(sent_at).as_micros().max(1) as u64;
                    histogram.saturating_record(micros);
                }
            }
            if start == end {
                (start, end) = (0, 0);
            }
        }
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
