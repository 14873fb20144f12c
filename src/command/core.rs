//! The execution core: what get, touch, store, delete and incr/decr mean, once for the
//! text, meta and binary protocols (and `mg`/`me`, the meta protocol's own reads). Each
//! function runs one request against the store, keeps the counters (`stats`, `stats
//! detail`) and returns a typed `Response`; the protocols differ only in how they
//! compose it (see `crate::protocol::response`).

use super::Context;
use crate::protocol::meta::MetaHit;
use crate::protocol::{Exptime, Hit, ProtocolError, Response, StoreMode, Value};
use crate::store::{
    self, MetaArith, MetaArithOutcome, MetaDeleteOutcome, MetaView, StoreOutcome, ValueRef,
};
use crate::watch::{self, ItemGet, ItemStore, Kinds};

/// Which protocol asked, where memcached 1.6.18 counts differently: text and binary
/// feed the `stats detail` prefixes, meta commands do not; a binary TOUCH counts as a
/// get of its prefix, a text `touch` not at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The text protocol.
    Text,
    /// The binary protocol.
    Binary,
    /// Meta commands.
    Meta,
}

/// The store's mode for a protocol's mode: the only place the two vocabularies meet
/// (the store knows no protocol).
fn store_mode(mode: StoreMode) -> store::StoreMode {
    match mode {
        StoreMode::Set => store::StoreMode::Set,
        StoreMode::Add => store::StoreMode::Add,
        StoreMode::Replace => store::StoreMode::Replace,
        StoreMode::Append => store::StoreMode::Append,
        StoreMode::Prepend => store::StoreMode::Prepend,
    }
}

/// The protocol's handle on a stored value (copied or shared, as the store holds it).
pub fn value<'a>(value: &ValueRef<'a>) -> Value<'a> {
    match *value {
        ValueRef::Inline(bytes) => Value::Inline(bytes),
        ValueRef::Shared(bytes) => Value::Shared(bytes),
    }
}

/// Reads one key, or reads it and sets a new expiry (`touch`, as gat/GAT); `visit` sees
/// the hit while its shard is locked. Returns whether it was a hit.
pub fn get(
    ctx: &mut Context<'_>,
    key: &[u8],
    touch: Option<Exptime>,
    visit: impl FnOnce(Hit<'_>),
) -> bool {
    count_get(ctx, touch);
    watch_fetch(ctx, key);
    let hit = ctx.store.fetch(key, touch.map(Exptime::seconds), |item| {
        visit(Hit {
            key: item.key,
            flags: item.flags,
            cas: item.cas,
            value: value(&item.value),
        })
    });
    detail(ctx, Origin::Text, key, |prefix| {
        prefix.gets += 1;
        prefix.hits += u64::from(hit);
    });
    hit
}

/// A get as every protocol counts it (`cmd_get`, and `cmd_touch` when it sets an expiry).
fn count_get(ctx: &mut Context<'_>, touch: Option<Exptime>) {
    ctx.counters.cmd_get += 1;
    if touch.is_some() {
        ctx.counters.cmd_touch += 1;
    }
}

/// What `mg` asks beyond a plain get.
#[derive(Debug, Clone, Copy)]
pub struct MetaGet {
    /// `T`: new client exptime.
    pub touch: Option<Exptime>,
    /// `N`: create a missing item with this client exptime.
    pub vivify: Option<Exptime>,
    /// `R`: win the recache right when the item expires before this client exptime.
    pub recache: Option<Exptime>,
    /// False under `u`.
    pub bump: bool,
}

/// `mg`: a get that reports the item's metadata, may create a missing item (`N`) and
/// hands out the recache right. It is counted as a get like the others, but keeps its
/// own store call (`Store::meta_get`, not `Store::fetch`): memcached counts a hit with
/// `T` as a touch hit only and a miss as no touch miss, the reply reports metadata read
/// before the access (`h`, `l`, `t`), and a vivifying get allocates.
pub fn meta_get(
    ctx: &mut Context<'_>,
    key: &[u8],
    request: MetaGet,
    visit: impl FnOnce(&MetaHit<'_>),
) -> bool {
    count_get(ctx, request.touch);
    watch_fetch(ctx, key);
    let options = store::MetaGet {
        new_expiry: request.touch.map(|ttl| ctx.store.expiry(ttl.seconds())),
        vivify: request.vivify.map(|ttl| ctx.store.expiry(ttl.seconds())),
        recache_before: request.recache.map(|ttl| ctx.store.expiry(ttl.seconds())),
        bump: request.bump,
    };
    ctx.store
        .meta_get(key, options, |item| visit(&meta_hit(&item)))
}

/// `me`: an item's metadata, without counting or touching it.
pub fn inspect(ctx: &mut Context<'_>, key: &[u8], visit: impl FnOnce(&MetaHit<'_>)) -> bool {
    let options = store::MetaGet {
        bump: false,
        ..store::MetaGet::default()
    };
    ctx.store
        .meta_get(key, options, |item| visit(&meta_hit(&item)))
}

/// The protocol's view of what the store reports of an item.
fn meta_hit<'a>(item: &MetaView<'a>) -> MetaHit<'a> {
    MetaHit {
        flags: item.flags,
        cas: item.cas,
        value: value(&item.value),
        ttl: item.ttl,
        ttl_before: item.ttl_before,
        touch_ttl: item.touch_ttl,
        vivify_ttl: item.vivify_ttl,
        last_access: item.last_access,
        fetched_before: item.fetched_before,
        stale: item.stale,
        won: item.won,
        token_taken: item.token_taken,
        class: item.class,
        size: item.size,
    }
}

/// Sets a new expiry on an item (`touch`, TOUCH).
pub fn touch(ctx: &mut Context<'_>, key: &[u8], exptime: Exptime, origin: Origin) -> Response {
    ctx.counters.cmd_touch += 1;
    watch_fetch(ctx, key);
    let hit = ctx.store.touch(key, exptime.seconds());
    if origin == Origin::Binary {
        detail(ctx, origin, key, |prefix| {
            prefix.gets += 1;
            prefix.hits += u64::from(hit);
        });
    }
    if hit {
        Response::Touched
    } else {
        Response::NotFound
    }
}

/// The parameters of a store, as every protocol can express them.
#[derive(Debug, Clone, Copy)]
pub struct Store<'a> {
    /// How an existing item is treated.
    pub mode: StoreMode,
    /// The key.
    pub key: &'a [u8],
    /// Client flags.
    pub flags: u32,
    /// Client exptime.
    pub exptime: Exptime,
    /// The value.
    pub data: &'a [u8],
    /// Store only if the item's CAS is still this one.
    pub compare_cas: Option<u64>,
    /// Meta `I`: an older CAS is accepted and the new item is marked stale.
    pub invalidate: bool,
}

/// set/add/replace/append/prepend/cas, `ms`, SET/ADD/REPLACE/APPEND/PREPEND.
pub fn store(ctx: &mut Context<'_>, request: Store<'_>, origin: Origin) -> Response {
    ctx.counters.cmd_set += 1;
    detail(ctx, origin, request.key, |prefix| prefix.sets += 1);
    watch_fetch(ctx, request.key);
    let outcome = ctx.store.meta_store(
        store_mode(request.mode),
        request.key,
        request.flags,
        request.exptime.seconds(),
        request.data,
        request.compare_cas,
        request.invalidate,
    );
    watch_store(ctx, &request, store_status(&outcome));
    match outcome {
        StoreOutcome::Stored(cas) => Response::Stored { cas },
        StoreOutcome::NotStored => Response::NotStored,
        StoreOutcome::Exists => Response::Exists,
        StoreOutcome::NotFound => Response::NotFound,
        StoreOutcome::OutOfMemory => {
            ctx.counters.store_no_memory += 1;
            Response::Error(ProtocolError::OutOfMemoryStoring)
        }
    }
}

/// A value over the item size limit, refused before its data was read. The old value
/// is removed so no stale data outlives the write, as memcached does: after a plain
/// text `set` (not `cas`), a binary SET, and any `ms`.
pub fn too_large(
    ctx: &mut Context<'_>,
    mode: StoreMode,
    compare_cas: bool,
    key: &[u8],
    origin: Origin,
) -> Response {
    ctx.counters.store_too_large += 1;
    let refused = Store {
        mode,
        key,
        flags: 0,
        exptime: Exptime::NEVER,
        data: &[],
        compare_cas: compare_cas.then_some(0),
        invalidate: false,
    };
    watch_store(ctx, &refused, "too_large");
    if origin == Origin::Meta || (mode == StoreMode::Set && !compare_cas) {
        watch_fetch(ctx, key);
        ctx.store.discard(key);
    }
    Response::Error(ProtocolError::TooLarge)
}

/// delete, `md`, DELETE: with a CAS, only if it matches; with `invalidate`, the item
/// is marked stale (and given `new_ttl`) instead of removed.
pub fn delete(
    ctx: &mut Context<'_>,
    key: &[u8],
    compare_cas: Option<u64>,
    invalidate: bool,
    new_ttl: Option<Exptime>,
    origin: Origin,
) -> Response {
    detail(ctx, origin, key, |prefix| prefix.deletes += 1);
    watch_fetch(ctx, key);
    let new_ttl = new_ttl.map(Exptime::seconds);
    match ctx.store.meta_delete(key, compare_cas, invalidate, new_ttl) {
        MetaDeleteOutcome::Deleted => Response::Deleted,
        MetaDeleteOutcome::NotFound => Response::NotFound,
        MetaDeleteOutcome::Exists => Response::Exists,
    }
}

/// The parameters of incr/decr, as every protocol can express them.
#[derive(Debug, Clone, Copy)]
pub struct Arith {
    /// Increment (or decrement).
    pub incr: bool,
    /// The unsigned delta.
    pub delta: u64,
    /// Only if the item's CAS is still this one.
    pub compare_cas: Option<u64>,
    /// Create a missing item with this (client exptime, initial value).
    pub auto_create: Option<(Exptime, u64)>,
    /// Set this new client exptime.
    pub new_ttl: Option<Exptime>,
}

/// incr/decr, `ma`, INCREMENT/DECREMENT.
pub fn arith(ctx: &mut Context<'_>, key: &[u8], request: Arith) -> Response {
    watch_fetch(ctx, key);
    let outcome = ctx.store.meta_arith(
        key,
        MetaArith {
            incr: request.incr,
            delta: request.delta,
            compare: request.compare_cas,
            vivify: request
                .auto_create
                .map(|(exptime, initial)| (ctx.store.expiry(exptime.seconds()), initial)),
            new_expiry: request
                .new_ttl
                .map(|exptime| ctx.store.expiry(exptime.seconds())),
        },
    );
    match outcome {
        MetaArithOutcome::Value {
            value,
            cas,
            ttl,
            ttl_before,
            created,
        } => Response::Number {
            value,
            cas,
            ttl,
            ttl_before,
            created,
        },
        MetaArithOutcome::NotFound => Response::NotFound,
        MetaArithOutcome::Exists => Response::Exists,
        MetaArithOutcome::NonNumeric => Response::Error(ProtocolError::NonNumericValue),
        // The store answers "not stored" only when the new value found no memory.
        MetaArithOutcome::NotStored => Response::Error(ProtocolError::OutOfMemory),
    }
}

/// Counts a request for `stats detail` unless memcached leaves it out.
fn detail(
    ctx: &Context<'_>,
    origin: Origin,
    key: &[u8],
    update: impl FnOnce(&mut crate::stats::PrefixCounters),
) {
    if origin != Origin::Meta {
        ctx.stats
            .detail
            .record(key, ctx.settings.prefix_delimiter, update);
    }
}

/// `watch fetchers`: the lookup a request starts with, as memcached logs it (a store or
/// delete looks its key up first). Nothing runs unless a watcher is attached.
fn watch_fetch(ctx: &Context<'_>, key: &[u8]) {
    watch::log(Kinds::FETCHERS, || ItemGet {
        key,
        fetched: ctx.store.peek(key),
    });
}

/// `watch mutations`: a store and how it ended (`status=` as memcached names it).
fn watch_store(ctx: &Context<'_>, request: &Store<'_>, status: &'static str) {
    watch::log(Kinds::MUTATIONS, || {
        let command = match (request.compare_cas, request.mode) {
            (Some(_), _) => "cas",
            (None, StoreMode::Set) => "set",
            (None, StoreMode::Add) => "add",
            (None, StoreMode::Replace) => "replace",
            (None, StoreMode::Append) => "append",
            (None, StoreMode::Prepend) => "prepend",
        };
        // memcached prints the expiry minus now, unsigned: 0 stays 0, the past wraps.
        let ttl = match request.exptime.seconds() {
            0 => 0,
            exptime => ctx
                .store
                .expiry(exptime)
                .wrapping_sub(ctx.store.clock().now()),
        };
        // A stored item is described as it now is (after append, the whole value).
        let (class, size) = match ctx.store.peek(request.key) {
            watch::Fetched::Found { class, size } if status == "stored" => (class, size),
            _ => (0, request.data.len()),
        };
        ItemStore {
            key: request.key,
            status,
            command,
            ttl,
            class,
            size,
        }
    });
}

/// memcached's `status=` word for a store outcome.
fn store_status(outcome: &StoreOutcome) -> &'static str {
    match outcome {
        StoreOutcome::Stored(_) => "stored",
        StoreOutcome::NotStored => "not_stored",
        StoreOutcome::Exists => "exists",
        StoreOutcome::NotFound => "not_found",
        StoreOutcome::OutOfMemory => "no_memory",
    }
}
