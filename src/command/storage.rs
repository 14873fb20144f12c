//! `set`, `add`, `replace`, `append`, `prepend`, `cas`.

use super::{Context, Flow, reply, reply_error};
use crate::protocol::{ProtocolError, Reply, ReplyBuffer, StorageVerb};
use crate::store::{StoreMode, StoreOutcome};

/// Stores a value and answers with memcached's status line.
#[allow(clippy::too_many_arguments)]
pub fn store(
    ctx: &mut Context<'_>,
    out: &mut ReplyBuffer,
    verb: StorageVerb,
    key: &[u8],
    flags: u32,
    exptime: i32,
    data: &[u8],
    noreply: bool,
) -> Flow {
    ctx.counters.cmd_set += 1;
    ctx.stats
        .detail
        .record(key, ctx.settings.prefix_delimiter, |prefix| {
            prefix.sets += 1
        });
    let mode = match verb {
        StorageVerb::Set => StoreMode::Set,
        StorageVerb::Add => StoreMode::Add,
        StorageVerb::Replace => StoreMode::Replace,
        StorageVerb::Append => StoreMode::Append,
        StorageVerb::Prepend => StoreMode::Prepend,
        StorageVerb::Cas(cas) => StoreMode::Cas(cas),
    };
    match ctx.store.store(mode, key, flags, exptime, data) {
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
    verb: StorageVerb,
    key: &[u8],
    noreply: bool,
) -> Flow {
    ctx.counters.store_too_large += 1;
    if verb == StorageVerb::Set {
        ctx.store.discard(key);
    }
    reply_error(out, ProtocolError::TooLarge, noreply);
    Flow::Continue
}
