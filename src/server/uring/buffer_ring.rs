//! The buffers a ring's multishot receives fill: a buffer ring registered with the kernel
//! (`IORING_REGISTER_PBUF_RING`, Linux 5.19).
//!
//! Why a ring rather than `IORING_OP_PROVIDE_BUFFERS`: giving a buffer back is then two
//! stores in user space (its descriptor and the ring's tail), where the older operation
//! cost a submission entry, its trip through the kernel and a kernel allocation for every
//! message received, one more operation per request at depth 1.

use io_uring::IoUring;
use io_uring::types::BufRingEntry;
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

/// A registered buffer ring and the buffers it hands out.
pub(super) struct BufferRing {
    /// The descriptors the kernel takes buffers from: a page-aligned mapping, as the
    /// kernel requires; the tail the kernel reads overlays the first descriptor.
    descriptors: NonNull<BufRingEntry>,
    mapped: usize,
    /// The buffers, `size` bytes each; buffer `id` starts at `id * size`.
    memory: Box<[u8]>,
    size: usize,
    /// Descriptors in the ring (a power of two).
    count: u16,
    /// Where the next returned buffer's descriptor goes; published to the kernel by
    /// [`Self::publish`].
    tail: u16,
}

// SAFETY: the mapping is owned by this value alone; the ring thread that owns the value
// is the only user-space writer.
unsafe impl Send for BufferRing {}

impl BufferRing {
    /// Registers `count` buffers of `size` bytes as buffer group `group` of `ring`, all
    /// of them available to the kernel.
    ///
    /// The caller must keep the value alive as long as `ring` may fill its buffers (in
    /// [`super::event_loop::RingLoop`] the ring is declared first, so it goes first).
    pub(super) fn register(
        ring: &IoUring,
        group: u16,
        count: u16,
        size: usize,
    ) -> io::Result<Self> {
        assert!(
            count.is_power_of_two(),
            "a buffer ring's size is a power of two"
        );
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let mapped =
            (usize::from(count) * std::mem::size_of::<BufRingEntry>()).next_multiple_of(page);
        // SAFETY: an anonymous private mapping with no address hint has no preconditions.
        let start = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapped,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if start == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut buffers = BufferRing {
            descriptors: NonNull::new(start.cast()).expect("mmap succeeded"),
            mapped,
            memory: vec![0; usize::from(count) * size].into_boxed_slice(),
            size,
            count,
            tail: 0,
        };
        // SAFETY: the descriptors are a live, zeroed, page-aligned mapping of `count`
        // entries that lives as long as `buffers`, which the caller keeps alive as long as
        // the ring uses it.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(start as u64, count, group, 0)?;
        }
        for id in 0..count {
            buffers.push(id);
        }
        buffers.publish();
        Ok(buffers)
    }

    /// The first `len` bytes the kernel received into buffer `id`.
    pub(super) fn received(&self, id: u16, len: usize) -> &[u8] {
        let start = usize::from(id) * self.size;
        &self.memory[start..start + len.min(self.size)]
    }

    /// Gives buffer `id` back to the kernel once its bytes have been used.
    pub(super) fn recycle(&mut self, id: u16) {
        self.push(id);
        self.publish();
    }

    /// Leaves the buffers' memory allocated for good: for a ring abandoned with receives
    /// still in flight, which the kernel may complete after the ring is gone.
    pub(super) fn leak(&mut self) {
        std::mem::forget(std::mem::take(&mut self.memory));
    }

    fn push(&mut self, id: u16) {
        let index = usize::from(self.tail & (self.count - 1));
        let address = self.memory[usize::from(id) * self.size..].as_ptr() as u64;
        // SAFETY: `index` is within the `count` descriptors of the mapping. The kernel
        // reads a descriptor only once the tail published past it.
        let descriptor = unsafe { &mut *self.descriptors.as_ptr().add(index) };
        descriptor.set_addr(address);
        descriptor.set_len(u32::try_from(self.size).unwrap_or(u32::MAX));
        descriptor.set_bid(id);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes every descriptor pushed so far visible to the kernel.
    fn publish(&self) {
        // SAFETY: the tail overlays a field of the first descriptor of the live mapping;
        // the kernel reads it concurrently, hence the atomic release store (it orders the
        // descriptor writes before it).
        unsafe {
            let tail = BufRingEntry::tail(self.descriptors.as_ptr()).cast_mut();
            AtomicU16::from_ptr(tail).store(self.tail, Ordering::Release);
        }
    }
}

impl Drop for BufferRing {
    fn drop(&mut self) {
        // SAFETY: `descriptors` is a live mapping of `mapped` bytes made by `register`.
        // The kernel pinned its pages while registered, so unmapping here never pulls
        // memory from under it.
        unsafe {
            libc::munmap(self.descriptors.as_ptr().cast(), self.mapped);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycled_buffers_go_to_the_ring_tail_in_turn() {
        let Ok(ring) = super::super::build_ring(8) else {
            eprintln!("SKIPPED: this kernel refuses io_uring");
            return;
        };
        let mut buffers = BufferRing::register(&ring, 0, 4, 64).expect("a buffer ring registers");
        assert_eq!(buffers.tail, 4);
        buffers.recycle(2);
        assert_eq!(buffers.tail, 5);
        // SAFETY: entry 0 of the live mapping.
        let first = unsafe { &*buffers.descriptors.as_ptr() };
        assert_eq!(
            first.bid(),
            2,
            "the fifth descriptor wraps to the first slot"
        );
        assert_eq!(first.addr(), buffers.received(2, 0).as_ptr() as u64);
        assert_eq!(first.len(), 64);
        assert_eq!(buffers.received(1, 1000).len(), 64);
    }
}
