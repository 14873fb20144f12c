//! The meta protocol's store operations: reads that report item metadata and hand out
//! the right to recache (win/stale), conditional deletes that invalidate, arithmetic
//! that auto-creates.

use super::{ArithOutcome, Lookup, Now, OutOfMemory, Shard};
use crate::numbers::Decimal;
use crate::store::item::{FETCHED, Handle, STALE, TOKEN_SENT};
use crate::store::memory::ValueRef;

/// Options of a meta get.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetaGet {
    /// `T`: new absolute expiry.
    pub new_expiry: Option<u32>,
    /// `N`: on a miss, create an empty item with this expiry and win it.
    pub vivify: Option<u32>,
    /// `R`: win when the item expires before this server time.
    pub recache_before: Option<u32>,
    /// Not `u`: count the read for eviction.
    pub bump: bool,
}

/// What a meta get reports of an item.
pub struct MetaView<'a> {
    /// Client flags.
    pub flags: u32,
    /// CAS value.
    pub cas: u64,
    /// The value.
    pub value: ValueRef<'a>,
    /// Seconds of life left, -1 for none.
    pub ttl: i64,
    /// Seconds of life left before this request (-1 for an item it created).
    pub ttl_before: i64,
    /// Seconds of life the new expiry (`T`) gave it.
    pub touch_ttl: Option<i64>,
    /// Seconds of life it was created with (`N`), when this request created it.
    pub vivify_ttl: Option<i64>,
    /// Seconds since the previous access.
    pub last_access: u32,
    /// Read before this request (`h`).
    pub fetched_before: bool,
    /// Invalidated (`X`).
    pub stale: bool,
    /// This request won the right to recache (`W`).
    pub won: bool,
    /// Another request already won it (`Z`).
    pub token_taken: bool,
    /// Slab class id (1-based) and item size, for `me`.
    pub class: usize,
    /// Bytes the item occupies.
    pub size: usize,
}

/// Outcome of a meta delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaDeleteOutcome {
    /// Deleted or invalidated.
    Deleted,
    /// No such item.
    NotFound,
    /// CAS mismatch.
    Exists,
}

/// Options of a meta arithmetic request.
#[derive(Debug, Clone, Copy)]
pub struct MetaArith {
    /// Increment (true) or decrement.
    pub incr: bool,
    /// Amount.
    pub delta: u64,
    /// `C`: compare CAS first.
    pub compare: Option<u64>,
    /// `N` and `J`: create with (expiry, initial value) on a miss.
    pub vivify: Option<(u32, u64)>,
    /// `T`: new expiry.
    pub new_expiry: Option<u32>,
}

/// Outcome of a meta arithmetic request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaArithOutcome {
    /// The new value with the item's CAS and TTL; `created` when auto-created.
    Value {
        /// New number.
        value: u64,
        /// New CAS.
        cas: u64,
        /// TTL left (-1 none).
        ttl: i64,
        /// TTL left before the request (-1 for an item it created).
        ttl_before: i64,
        /// The item was created by `N`.
        created: bool,
    },
    /// No such item.
    NotFound,
    /// The value is not a number.
    NonNumeric,
    /// CAS mismatch.
    Exists,
    /// The item could not be created or grown.
    NotStored,
}

/// Seconds of life left, -1 for none. As memcached's 32-bit unsigned subtraction: an
/// item created already expired (`N-1`) reports a wrapped, huge TTL, as memcached does.
fn ttl_of(exptime: u32, now: u32) -> i64 {
    if exptime == 0 {
        -1
    } else {
        i64::from(exptime.wrapping_sub(now))
    }
}

/// What a meta get saw of an item before changing it.
#[derive(Debug, Clone, Copy)]
struct Before {
    /// State bits.
    state: u8,
    /// Last access.
    atime: u32,
    /// Expiry.
    exptime: u32,
    /// The expiry `T` set.
    new_expiry: Option<u32>,
    /// This request created the item.
    created: bool,
}

impl Shard {
    fn view(&self, handle: Handle, now: u32, before: Before, won: bool) -> MetaView<'_> {
        let header = self.memory.header(handle);
        let Before {
            state: before,
            atime,
            exptime: exptime_before,
            new_expiry,
            created,
        } = before;
        MetaView {
            flags: self.memory.flags(handle),
            cas: header.cas,
            value: self.memory.value(handle),
            ttl: ttl_of(header.exptime, now),
            ttl_before: if created {
                -1
            } else {
                ttl_of(exptime_before, now)
            },
            touch_ttl: new_expiry.map(|expiry| ttl_of(expiry, now)),
            vivify_ttl: created.then(|| ttl_of(header.exptime, now)),
            last_access: now.saturating_sub(atime),
            fetched_before: before & FETCHED != 0,
            stale: header.state & STALE != 0,
            won,
            token_taken: before & TOKEN_SENT != 0 && !won,
            class: self.memory.class_of(handle) + 1,
            size: self.memory.item_size(handle),
        }
    }

    /// `mg`: reads an item with its metadata; on a miss with `N` creates an empty one
    /// whose recache right goes to this caller. Returns false on a plain miss.
    pub fn meta_get(
        &mut self,
        key: &[u8],
        hash: u64,
        now: Now,
        options: MetaGet,
        visit: impl FnOnce(MetaView<'_>),
    ) -> bool {
        let handle = match self.lookup(key, hash, now) {
            Lookup::Hit(handle) => handle,
            miss => {
                self.count_get_miss(miss);
                let Some(expiry) = options.vivify else {
                    return false;
                };
                if self
                    .put(key, hash, 0, expiry, &[], now, TOKEN_SENT)
                    .is_err()
                {
                    return false;
                }
                let Some(handle) = self.find(key, hash) else {
                    return false;
                };
                let before = Before {
                    state: 0,
                    atime: now.now,
                    exptime: 0,
                    new_expiry: options.new_expiry,
                    created: true,
                };
                // Reported as never read, then read by this request like any hit
                // (memcached bumps the item it just created).
                if options.bump {
                    self.memory.mark_fetched(handle, now.now);
                }
                visit(self.view(handle, now.now, before, true));
                return true;
            }
        };
        let before = *self.memory.header(handle);
        // memcached counts a hit of `mg` with `T` as a touch hit, not a get hit.
        if let Some(expiry) = options.new_expiry {
            self.counters.touch_hits += 1;
            self.class_counters(handle).touch_hits += 1;
            self.set_expiry(handle, expiry);
        } else {
            self.counters.get_hits += 1;
            self.class_counters(handle).get_hits += 1;
        }
        let exptime = self.memory.header(handle).exptime;
        let token_sent = before.state & TOKEN_SENT != 0;
        let recache = options
            .recache_before
            .is_some_and(|before| exptime != 0 && exptime < before);
        let won = !token_sent && (before.state & STALE != 0 || recache);
        if won {
            self.memory.header_mut(handle).state |= TOKEN_SENT;
        }
        if options.bump {
            self.memory.mark_fetched(handle, now.now);
        }
        let before = Before {
            state: before.state,
            atime: before.atime,
            exptime: before.exptime,
            new_expiry: options.new_expiry,
            created: false,
        };
        visit(self.view(handle, now.now, before, won));
        true
    }

    /// `md`: deletes, or with `invalidate` marks stale so the next reader wins a recache.
    pub fn meta_delete(
        &mut self,
        key: &[u8],
        hash: u64,
        now: Now,
        compare: Option<u64>,
        invalidate: bool,
        new_expiry: Option<u32>,
    ) -> MetaDeleteOutcome {
        let Some(handle) = self.lookup_live(key, hash, now) else {
            self.counters.delete_misses += 1;
            return MetaDeleteOutcome::NotFound;
        };
        if compare.is_some_and(|cas| cas != self.memory.header(handle).cas) {
            return MetaDeleteOutcome::Exists;
        }
        self.counters.delete_hits += 1;
        self.class_counters(handle).delete_hits += 1;
        if invalidate {
            let cas = self.new_cas();
            let header = self.memory.header_mut(handle);
            header.state = (header.state | STALE) & !TOKEN_SENT;
            header.cas = cas;
            if let Some(expiry) = new_expiry {
                self.set_expiry(handle, expiry);
            }
        } else {
            self.unlink(handle, hash);
        }
        MetaDeleteOutcome::Deleted
    }

    /// `ma`: incr/decr with optional CAS check, auto-create and TTL update.
    pub fn meta_arith(
        &mut self,
        key: &[u8],
        hash: u64,
        now: Now,
        request: MetaArith,
    ) -> MetaArithOutcome {
        let Some(handle) = self.lookup_live(key, hash, now) else {
            let Some((expiry, initial)) = request.vivify else {
                if request.incr {
                    self.counters.incr_misses += 1;
                } else {
                    self.counters.decr_misses += 1;
                }
                return MetaArithOutcome::NotFound;
            };
            let text = Decimal::new(initial);
            return match self.put(key, hash, 0, expiry, &[text.as_bytes()], now, 0) {
                Ok(cas) => MetaArithOutcome::Value {
                    value: initial,
                    cas,
                    ttl: ttl_of(expiry, now.now),
                    ttl_before: -1,
                    created: true,
                },
                Err(OutOfMemory) => MetaArithOutcome::NotStored,
            };
        };
        // As memcached's `do_add_delta`: an empty value is refused before the CAS is
        // compared, and a CAS of 0 compares nothing.
        if self.memory.value_len(handle) == 0 {
            return MetaArithOutcome::NonNumeric;
        }
        if request
            .compare
            .is_some_and(|cas| cas != 0 && cas != self.memory.header(handle).cas)
        {
            return MetaArithOutcome::Exists;
        }
        let ttl_before = ttl_of(self.memory.header(handle).exptime, now.now);
        let value = match self.apply_delta(handle, key, hash, request.incr, request.delta, now) {
            ArithOutcome::Value(value) => value,
            ArithOutcome::NonNumeric => return MetaArithOutcome::NonNumeric,
            ArithOutcome::NotFound => return MetaArithOutcome::NotFound,
            ArithOutcome::OutOfMemory => return MetaArithOutcome::NotStored,
        };
        let Some(handle) = self.find(key, hash) else {
            return MetaArithOutcome::NotFound;
        };
        if let Some(expiry) = request.new_expiry {
            self.set_expiry(handle, expiry);
        }
        let header = self.memory.header(handle);
        MetaArithOutcome::Value {
            value,
            cas: header.cas,
            ttl: ttl_of(header.exptime, now.now),
            ttl_before,
            created: false,
        }
    }
}
