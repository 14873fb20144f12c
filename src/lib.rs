//! ferrocached: a memcached-compatible cache server.
//!
//! ```text
//!  accept loop ──spawns──> connection task (one per client, on -t worker threads)
//!                            │ owns: read BytesMut, ReplyBuffer, local counters
//!                            │ (folded per batch into its thread's share, summed by stats)
//!                            │
//!  command::session::Session: the one loop for TCP, unix, TLS and UDP datagrams
//!        bytes ──protocol::{parse, meta, binary}──> Request<'buf> (borrows the read buffer)
//!                            │
//!                 command::execute (one match) ──> command::core::{get,store,delete,..}
//!                            │        (one meaning per verb for text, meta and binary)
//!                            │             │ Store::{fetch,meta_store,...}
//!                            │             │ hash(key, per-process seed) -> shard i
//!                            │             └─ Mutex<Shard i>: index + slab pages + LRU
//!                            │                (one lock per request, never two)
//!                 protocol::Response ──composed as text, meta or binary bytes──┐
//!        ReplyBuffer <─────────────────────────────────────────────────────────┘
//!                    replies of a batch, written with one vectored write
//!
//!  watch: emitters (core, eviction, connections) test one atomic bit mask; with a
//!         watcher attached, lines go into its bounded buffer, its connection task
//!         writes them (`watch.rs`)
//!
//!  background: clock tick (1 s resolution, like memcached), expiry crawler,
//!              periodic snapshot (copies ≤1,000 items per shard lock hold)
//!
//!  stop: accept loops end ──> workers drain (each connection finishes and flushes its
//!        batch) and their threads are joined ──> final snapshot (the only writer:
//!        it cuts a periodic one short and waits for it) ──> exit 0
//! ```
//!
//! Each layer is usable alone: the parser without a socket, the store without a parser.

pub mod auth;
pub mod buffers;
pub mod command;
pub mod config;
pub mod limits;
pub mod metrics;
pub mod numbers;
pub mod process;
pub mod protocol;
pub mod server;
pub mod stats;
pub mod store;
pub mod watch;
