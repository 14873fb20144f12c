//! Memory that connections hold for requests and replies, bounded per connection and
//! server-wide.
//!
//! - Read buffers: a connection holds one only while it has bytes to parse. An idle
//!   connection gives its buffer back to a small per-thread pool and waits for the socket
//!   to become readable without one, as memcached does with its per-thread buffer caches.
//! - Reply windows: replies are produced in windows of at most [`REPLY_WINDOW`] bytes
//!   (plus one value); a long multiget resumes after the window has been written, so one
//!   request can never make the server buffer its whole answer.
//! - `-o read_buf_mem_limit=N` (megabytes, 0 = unlimited) bounds the sum of both
//!   server-wide. Under it a window is a share of the limit and a get must fit its
//!   window, as memcached's get must fit its response objects: a larger one, or one that
//!   finds no room at all, answers `SERVER_ERROR out of memory writing get response`
//!   (`response_obj_oom`) and frees what it queued, so clients that never read cannot
//!   pin the limit with endless replies. A connection that finds no room for a read
//!   buffer is closed (`read_buf_oom`).

use bytes::BytesMut;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Size of a read buffer; grows for a large value and goes back to this size when idle.
pub const READ_BUFFER: usize = 16 * 1024;
/// Size of a reply buffer: room for the replies of a batch of small requests, reserved
/// once (values from `protocol::reply`'s share threshold up are queued by reference, not
/// copied in), so composing a reply never grows it from nothing.
pub const REPLY_BUFFER: usize = 4 * 1024;
/// Reply bytes a connection queues before it writes them and resumes.
pub const REPLY_WINDOW: usize = 2 * 1024 * 1024;
/// Smallest reply window granted under a memory limit.
const MIN_LIMITED_WINDOW: usize = 64 * 1024;

/// How much reply one pass over a connection's requests may queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyWindow {
    /// Bytes that may be queued before a get pauses or fails (one value may overshoot).
    pub bytes: usize,
    /// A get that fills the window resumes once it is written; otherwise (UDP, or under
    /// `read_buf_mem_limit`) it answers out of memory.
    pub resumable: bool,
}

impl ReplyWindow {
    /// No bound: replies built for a caller that keeps them whole (stats, tests).
    pub const UNBOUNDED: ReplyWindow = ReplyWindow {
        bytes: usize::MAX,
        resumable: true,
    };

    /// A get pauses after every key: over UDP each hit is a message of its own, as
    /// memcached sends one per response object.
    pub const EACH_KEY: ReplyWindow = ReplyWindow {
        bytes: 0,
        resumable: true,
    };
}
/// Empties `buffer` and reclaims its whole allocation when nothing else shares it; true
/// when it then holds exactly `standard` bytes (a buffer worth pooling).
fn reclaim(buffer: &mut BytesMut, standard: usize) -> bool {
    buffer.clear();
    if buffer.capacity() != standard {
        // Only a buffer whose start was consumed needs (and pays for) the reclaim.
        buffer.reserve(standard);
    }
    buffer.capacity() == standard
}

/// Read buffers (and, separately, reply buffers) kept per thread for connections that
/// become busy again.
const POOL_CAPACITY: usize = 64;

/// Bytes pooled by one thread. Only that thread writes it (a load and a store, never a
/// locked read-modify-write), so a connection going idle and busy again touches no
/// cache line another thread writes; aligned so threads never share one.
#[derive(Debug, Default)]
#[repr(align(128))]
struct PooledBytes(AtomicU64);

/// One thread's pool: which [`BufferMemory`] it belongs to (0 before its first use), its
/// read and reply buffers, its figure (of read buffers, which is what memcached's
/// `read_buf_bytes_free` counts).
struct Pool {
    owner: u64,
    buffers: Vec<BytesMut>,
    replies: Vec<BytesMut>,
    pooled: Option<Arc<PooledBytes>>,
}

impl Pool {
    /// Publishes the pooled read buffers' bytes (after a change to `buffers`).
    fn publish(&self) {
        if let Some(pooled) = &self.pooled {
            // Only this thread writes its figure.
            let bytes = (self.buffers.len() * READ_BUFFER) as u64;
            pooled.0.store(bytes, Ordering::Relaxed);
        }
    }
}

/// Tells one [`BufferMemory`]'s pools from another's (several servers in one test).
static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static POOL: RefCell<Pool> = const {
        RefCell::new(Pool {
            owner: 0,
            buffers: Vec::new(),
            replies: Vec::new(),
            pooled: None,
        })
    };
}

/// Server-wide accounting of connection buffers, shown by `stats` under memcached's names.
#[derive(Debug)]
pub struct BufferMemory {
    /// Identifies this accounting's per-thread pools.
    owner: u64,
    /// Every thread's pooled-bytes figure, summed for `read_buf_bytes_free`.
    pools: Mutex<Vec<Arc<PooledBytes>>>,
    /// `read_buf_mem_limit` in bytes; 0 means unlimited.
    limit: AtomicUsize,
    /// Bytes of read buffers (in use or pooled) and of granted reply windows.
    used: AtomicUsize,
    read_buffers: AtomicU64,
    read_bytes: AtomicU64,
    read_oom: AtomicU64,
    windows: AtomicU64,
    window_bytes: AtomicU64,
    response_oom: AtomicU64,
}

/// A snapshot of the counters for `stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferStats {
    /// Read buffers allocated (`read_buf_count`).
    pub read_buffers: u64,
    /// Their bytes (`read_buf_bytes`).
    pub read_bytes: u64,
    /// Bytes of pooled, unused read buffers (`read_buf_bytes_free`).
    pub read_bytes_free: u64,
    /// Connections closed because no read buffer could be had (`read_buf_oom`).
    pub read_oom: u64,
    /// Reply windows currently granted under `read_buf_mem_limit` (`response_obj_count`;
    /// without a limit windows are not counted, so the hot path shares no counter).
    pub windows: u64,
    /// Their bytes (`response_obj_bytes`).
    pub window_bytes: u64,
    /// Gets answered with out of memory (`response_obj_oom`).
    pub response_oom: u64,
}

impl Default for BufferMemory {
    fn default() -> Self {
        BufferMemory {
            owner: NEXT_OWNER.fetch_add(1, Ordering::Relaxed),
            pools: Mutex::default(),
            limit: AtomicUsize::default(),
            used: AtomicUsize::default(),
            read_buffers: AtomicU64::default(),
            read_bytes: AtomicU64::default(),
            read_oom: AtomicU64::default(),
            windows: AtomicU64::default(),
            window_bytes: AtomicU64::default(),
            response_oom: AtomicU64::default(),
        }
    }
}

impl BufferMemory {
    /// Runs `work` on this thread's pool, making it this accounting's (and registering
    /// it) on first use. `work` publishes the figure if it changes the read buffers.
    #[inline]
    fn with_pool<T>(&self, work: impl FnOnce(&mut Pool) -> T) -> T {
        POOL.with_borrow_mut(|pool| {
            if pool.owner != self.owner {
                self.adopt(pool);
            }
            work(pool)
        })
    }

    /// Makes this thread's pool this accounting's: what another one pooled is dropped
    /// (several servers in one test process).
    #[cold]
    fn adopt(&self, pool: &mut Pool) {
        let pooled = Arc::new(PooledBytes::default());
        self.pools
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(pooled.clone());
        *pool = Pool {
            owner: self.owner,
            buffers: Vec::new(),
            replies: Vec::new(),
            pooled: Some(pooled),
        };
    }

    /// Sets `read_buf_mem_limit` (bytes, 0 = unlimited).
    pub fn set_limit(&self, bytes: usize) {
        self.limit.store(bytes, Ordering::Relaxed);
    }

    /// The limit in bytes (0 = unlimited).
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    fn try_charge(&self, bytes: usize) -> bool {
        let limit = self.limit();
        if limit == 0 {
            self.used.fetch_add(bytes, Ordering::Relaxed);
            return true;
        }
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                (used + bytes <= limit).then_some(used + bytes)
            })
            .is_ok()
    }

    fn uncharge(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// A read buffer of at least [`READ_BUFFER`] bytes from this thread's pool or a new
    /// one; `None` (counted in `read_buf_oom`) when the limit leaves no room.
    pub fn take_read_buffer(&self) -> Option<BytesMut> {
        let mut read = BytesMut::new();
        self.take_buffers(&mut read, None).then_some(read)
    }

    /// Puts a read buffer as [`BufferMemory::take_read_buffer`] gives it into `read` and,
    /// when `reply` is given, a reply buffer as [`BufferMemory::take_reply_buffer`] gives
    /// it into `reply`, from one pool access (a connection waking to read will reply).
    /// Both hold no buffer before. False (and `read` still holds none) when the limit
    /// leaves no room for the read buffer. The buffers are put in place, not returned:
    /// nothing is copied on the way.
    pub fn take_buffers(&self, read: &mut BytesMut, reply: Option<&mut BytesMut>) -> bool {
        let pooled_read = self.with_pool(|pool| {
            if let Some(reply) = reply {
                *reply = pool
                    .replies
                    .pop()
                    .unwrap_or_else(|| BytesMut::with_capacity(REPLY_BUFFER));
            }
            let Some(buffer) = pool.buffers.pop() else {
                return false;
            };
            *read = buffer;
            pool.publish();
            true
        });
        if pooled_read {
            return true;
        }
        if !self.try_charge(READ_BUFFER) {
            self.read_oom.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.read_buffers.fetch_add(1, Ordering::Relaxed);
        self.read_bytes
            .fetch_add(READ_BUFFER as u64, Ordering::Relaxed);
        *read = BytesMut::with_capacity(READ_BUFFER);
        true
    }

    /// Takes back a connection's read buffer (its unparsed bytes are dropped): pooled if
    /// it is of the standard size and the pool has room, freed otherwise. A buffer that
    /// grew for a large value is freed, and only its standard part was ever charged.
    pub fn give_read_buffer(&self, mut buffer: BytesMut) {
        self.give_buffers(&mut buffer, &mut BytesMut::new());
    }

    /// Forgets a read buffer that was freed rather than pooled.
    fn uncount_read_buffer(&self) {
        self.read_buffers.fetch_sub(1, Ordering::Relaxed);
        self.read_bytes
            .fetch_sub(READ_BUFFER as u64, Ordering::Relaxed);
        self.uncharge(READ_BUFFER);
    }

    /// A reply buffer of [`REPLY_BUFFER`] bytes from this thread's pool or a new one. Reply
    /// buffers are not charged to `read_buf_mem_limit`: the reply window bounds what a
    /// pass queues.
    pub fn take_reply_buffer(&self) -> BytesMut {
        self.with_pool(|pool| pool.replies.pop())
            .unwrap_or_else(|| BytesMut::with_capacity(REPLY_BUFFER))
    }

    /// Takes back a connection's written reply buffer: pooled if it is of the standard
    /// size and the pool has room, freed otherwise (one that grew for a long reply).
    pub fn give_reply_buffer(&self, mut buffer: BytesMut) {
        self.give_buffers(&mut BytesMut::new(), &mut buffer);
    }

    /// Takes back an idle connection's read and reply buffers at once (one pool access
    /// for both), as [`BufferMemory::give_read_buffer`] and
    /// [`BufferMemory::give_reply_buffer`] would each; both are left holding none. Taken
    /// from their place rather than passed in: nothing is copied on the way.
    pub fn give_buffers(&self, read: &mut BytesMut, reply: &mut BytesMut) {
        // A buffer of no capacity is no buffer: nothing to pool or to uncount.
        let has_read = read.capacity() != 0;
        let pool_read = has_read && reclaim(read, READ_BUFFER);
        let pool_reply = reply.capacity() != 0 && reclaim(reply, REPLY_BUFFER);
        let read_pooled = (pool_read || pool_reply)
            && self.with_pool(|pool| {
                if pool_reply && pool.replies.len() < POOL_CAPACITY {
                    pool.replies.push(std::mem::take(reply));
                }
                let room = pool_read && pool.buffers.len() < POOL_CAPACITY;
                if room {
                    pool.buffers.push(std::mem::take(read));
                    pool.publish();
                }
                room
            });
        if has_read && !read_pooled {
            self.uncount_read_buffer();
        }
        // What was not pooled is freed.
        for buffer in [read, reply] {
            if buffer.capacity() != 0 {
                *buffer = BytesMut::new();
            }
        }
    }

    /// Grants a reply window for one pass over a connection's requests: a resumable
    /// [`REPLY_WINDOW`] without a limit, else a share of what the limit leaves (possibly
    /// 0) that a get must fit.
    pub fn grant_window(&self) -> ReplyWindow {
        let limit = self.limit();
        if limit == 0 {
            // Unlimited: no shared counter is touched per pass.
            return ReplyWindow {
                bytes: REPLY_WINDOW,
                resumable: true,
            };
        }
        let wanted = REPLY_WINDOW.min((limit / 8).max(MIN_LIMITED_WINDOW));
        let granted = if self.try_charge(wanted) {
            wanted
        } else {
            let mut granted = 0;
            let _ = self
                .used
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                    granted = limit.saturating_sub(used).min(wanted);
                    Some(used + granted)
                });
            granted
        };
        if granted > 0 {
            self.windows.fetch_add(1, Ordering::Relaxed);
            self.window_bytes
                .fetch_add(granted as u64, Ordering::Relaxed);
        }
        ReplyWindow {
            bytes: granted,
            resumable: false,
        }
    }

    /// Returns a window once its replies are written.
    pub fn return_window(&self, window: ReplyWindow) {
        if window.resumable || window.bytes == 0 {
            return;
        }
        self.windows.fetch_sub(1, Ordering::Relaxed);
        self.window_bytes
            .fetch_sub(window.bytes as u64, Ordering::Relaxed);
        self.uncharge(window.bytes);
    }

    /// Counts a get answered with out of memory.
    pub fn count_response_oom(&self) {
        self.response_oom.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters for `stats`.
    pub fn stats(&self) -> BufferStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        BufferStats {
            read_buffers: read(&self.read_buffers),
            read_bytes: read(&self.read_bytes),
            read_bytes_free: self
                .pools
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .map(|pooled| pooled.0.load(Ordering::Relaxed))
                .sum(),
            read_oom: read(&self.read_oom),
            windows: read(&self.windows),
            window_bytes: read(&self.window_bytes),
            response_oom: read(&self.response_oom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_buffers_are_pooled_and_counted() {
        let memory = BufferMemory::default();
        let first = memory.take_read_buffer().unwrap();
        assert_eq!(first.capacity(), READ_BUFFER);
        memory.give_read_buffer(first);
        let stats = memory.stats();
        assert_eq!(
            (stats.read_buffers, stats.read_bytes_free),
            (1, READ_BUFFER as u64)
        );
        let again = memory.take_read_buffer().unwrap();
        assert_eq!(memory.stats().read_bytes_free, 0);
        assert_eq!(
            memory.stats().read_buffers,
            1,
            "the pooled buffer was reused"
        );
        drop(again);
    }

    #[test]
    fn a_grown_buffer_is_freed_not_pooled() {
        let memory = BufferMemory::default();
        let mut buffer = memory.take_read_buffer().unwrap();
        buffer.reserve(10 * READ_BUFFER);
        memory.give_read_buffer(buffer);
        assert_eq!(memory.stats().read_buffers, 0);
        assert_eq!(memory.used.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn reply_buffers_of_the_standard_size_are_pooled() {
        let memory = BufferMemory::default();
        let mut first = memory.take_reply_buffer();
        assert_eq!(first.capacity(), REPLY_BUFFER);
        first.extend_from_slice(b"VALUE k 0 1\r\n");
        let address = first.as_ptr();
        let written = first.split().freeze();
        drop(written);
        memory.give_reply_buffer(first);
        let again = memory.take_reply_buffer();
        assert_eq!(again.as_ptr(), address, "the allocation was reused");
        assert!(again.is_empty());
        assert_eq!(again.capacity(), REPLY_BUFFER);
        let mut grown = again;
        grown.reserve(4 * REPLY_BUFFER);
        memory.give_reply_buffer(grown);
        assert_eq!(
            memory.with_pool(|pool| pool.replies.len()),
            0,
            "a grown one was freed, not pooled"
        );
    }

    #[test]
    fn the_limit_bounds_windows_and_buffers() {
        let memory = BufferMemory::default();
        memory.set_limit(1024 * 1024);
        let windows: Vec<ReplyWindow> = (0..10).map(|_| memory.grant_window()).collect();
        assert_eq!(windows[0].bytes, 128 * 1024);
        assert!(windows.iter().all(|window| !window.resumable));
        let granted: usize = windows.iter().map(|window| window.bytes).sum();
        assert_eq!(granted, 1024 * 1024);
        assert_eq!(windows[9].bytes, 0, "nothing is left for a 9th window");
        assert!(memory.take_read_buffer().is_none());
        assert_eq!(memory.stats().read_oom, 1);
        for window in windows {
            memory.return_window(window);
        }
        assert_eq!(memory.stats().window_bytes, 0);
        assert!(memory.take_read_buffer().is_some());
    }
}
