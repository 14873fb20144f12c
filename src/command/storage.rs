//! `set`, `add`, `replace`, `append`, `prepend`, `cas`.

use super::{Context, Flow, reply, reply_error};
use crate::protocol::{ProtocolError, Reply, ReplyBuffer, StoreMode};
use crate::store::{self, StoreOutcome};

/// The store's mode for a protocol's mode: the only place the two vocabularies meet
/// (the store knows no protocol; text, meta and binary all store through here).
pub fn store_mode(mode: StoreMode) -> store::StoreMode {
    match mode {
        StoreMode::Set => store::StoreMode::Set,
        StoreMode::Add => store::StoreMode::Add,
        StoreMode::Replace => store::StoreMode::Replace,
        StoreMode::Append => store::StoreMode::Append,
        StoreMode::Prepend => store::StoreMode::Prepend,
    }
}

/// Stores a value and answers with memcached's status line.
#[allow(clippy::too_many_arguments)]
pub fn store(
    ctx: &mut Context<'_>,
    out: &mut ReplyBuffer,
    mode: StoreMode,
    compare_cas: Option<u64>,
    key: &[u8],
    flags: u32,
    exptime: i32,
    data: &[u8],
    noreply: bool,
) -> Flow {
    ctx.counters.cmd_set += 1;
    super::detail_set(ctx, key);
    let outcome = ctx.store.meta_store(
        store_mode(mode),
        key,
        flags,
        exptime,
        data,
        compare_cas,
        false,
    );
    match outcome {
        StoreOutcome::Stored(_) => reply(out, Reply::Stored, noreply),
        StoreOutcome::NotStored => reply(out, Reply::NotStored, noreply),
        StoreOutcome::Exists => reply(out, Reply::Exists, noreply),
        StoreOutcome::NotFound => reply(out, Reply::NotFound, noreply),
        StoreOutcome::OutOfMemory => {
            ctx.counters.store_no_memory += 1;
            reply_error(out, ProtocolError::OutOfMemoryStoring, noreply);
        }
    }
    Flow::Continue
}

/// A value over the item size limit: refused before its data is read. A failed `set`
/// removes the old value so no stale data outlives the write.
pub fn too_large(
    ctx: &mut Context<'_>,
    out: &mut ReplyBuffer,
    mode: StoreMode,
    compare_cas: Option<u64>,
    key: &[u8],
    noreply: bool,
) -> Flow {
    ctx.counters.store_too_large += 1;
    if mode == StoreMode::Set && compare_cas.is_none() {
        ctx.store.discard(key);
    }
    reply_error(out, ProtocolError::TooLarge, noreply);
    Flow::Continue
}
