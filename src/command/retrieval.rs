//! `get`, `gets`, `gat`, `gats`.

use super::{Context, Flow, core};
use crate::protocol::{Keys, ProtocolError, Reply, ReplyBuffer, response::compose_text_hit};

/// Answers a get-family request: one `VALUE` block per hit, then `END`.
///
/// The reply is bounded by `ctx.reply_window` (see `crate::buffers`). Once the window is
/// full, a resumable get pauses (`Flow::MoreKeys`) and the connection runs it again on
/// the remaining keys after writing, so a line naming one large key thousands of times
/// costs one window of memory, not the whole answer. A get that must fit its window
/// (UDP, `read_buf_mem_limit`) and does not answers memcached's out-of-memory error
/// instead of what it queued.
pub fn get(
    ctx: &mut Context<'_>,
    out: &mut ReplyBuffer,
    keys: Keys<'_>,
    with_cas: bool,
    new_exptime: Option<crate::protocol::Exptime>,
) -> Flow {
    let window = ctx.reply_window;
    let start = out.len();
    let mut answered_any = false;
    for key in keys.iter() {
        if answered_any && out.len() >= window.bytes {
            if window.resumable {
                return Flow::MoreKeys {
                    resume_at: keys.offset_of(key),
                };
            }
            return out_of_memory(ctx, out, start);
        }
        answered_any = true;
        if !answer(ctx, out, key, with_cas, new_exptime) {
            return out_of_memory(ctx, out, start);
        }
    }
    out.reply(Reply::End);
    Flow::Continue
}

/// [`get`] of one key (a `get <key>` line): no list to walk, and one key never pauses.
pub fn get_one(
    ctx: &mut Context<'_>,
    out: &mut ReplyBuffer,
    key: &[u8],
    with_cas: bool,
    new_exptime: Option<crate::protocol::Exptime>,
) -> Flow {
    let start = out.len();
    if !answer(ctx, out, key, with_cas, new_exptime) {
        return out_of_memory(ctx, out, start);
    }
    out.reply(Reply::End);
    Flow::Continue
}

/// Looks `key` up and queues its `VALUE` block on a hit. False when a hit finds no
/// reply window at all (the limit is spent): the get then answers out of memory.
#[inline]
fn answer(
    ctx: &mut Context<'_>,
    out: &mut ReplyBuffer,
    key: &[u8],
    with_cas: bool,
    new_exptime: Option<crate::protocol::Exptime>,
) -> bool {
    let window = ctx.reply_window;
    let no_room = window.bytes == 0 && !window.resumable && out.is_empty();
    let hit = core::get(ctx, key, new_exptime, |hit| {
        if !no_room {
            compose_text_hit(out, &hit, with_cas);
        }
    });
    !(hit && no_room)
}

/// Replaces what the get queued with memcached's out-of-memory reply.
fn out_of_memory(ctx: &mut Context<'_>, out: &mut ReplyBuffer, start: usize) -> Flow {
    out.truncate(start);
    out.error(ProtocolError::OutOfMemoryWritingGet);
    ctx.stats.buffers.count_response_oom();
    Flow::Continue
}
