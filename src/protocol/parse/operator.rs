//! The text parse of the operator verbs on slab pages and the crawler: `slabs reassign`,
//! `slabs automove`, `lru_crawler ...`, with memcached 1.6.18's token-count rules.

use super::{invalid, request};
use crate::numbers::{strtol32, strtoul32};
use crate::protocol::reply::ProtocolError;
use crate::protocol::request::{ClassList, CrawlerCommand, Frame, Request};
use crate::protocol::tokens::Tokens;

/// memcached's `lru_crawler sleep` ceiling: one second, in microseconds.
const CRAWLER_SLEEP_MAX: u32 = 1_000_000;
/// memcached's `MAX_NUMBER_OF_SLAB_CLASSES`: crawler class ids run from 1 below it.
const CRAWLER_CLASS_LIMIT: u32 = 64;

/// `slabs reassign <src> <dst>` (exactly four words) and `slabs automove <level>
/// [noreply]` (extra words ignored); anything else is `ERROR`.
pub(super) fn slabs<'a>(tokens: &Tokens<'a>, consumed: usize) -> Frame<'a> {
    let words = tokens.count;
    match (words, tokens.get(1.min(words - 1))) {
        (4, b"reassign") => match (strtol32(tokens.get(2)), strtol32(tokens.get(3))) {
            (Some(source), Some(destination)) => request(
                Request::SlabsReassign {
                    source,
                    destination,
                },
                consumed,
            ),
            _ => invalid(ProtocolError::BadFormat, false, consumed),
        },
        (3.., b"automove") => {
            let noreply = tokens.noreply();
            match strtoul32(tokens.get(2)) {
                Some(level) => request(Request::SlabsAutomove { level, noreply }, consumed),
                // `slabs automove ratio <r>` tunes memcached's automover, which
                // ferrocached does not have: `ERROR`, as memcached answers a bad ratio.
                None if tokens.get(2) == b"ratio" => {
                    invalid(ProtocolError::UnknownCommand, noreply, consumed)
                }
                None => invalid(ProtocolError::BadFormat, noreply, consumed),
            }
        }
        _ => invalid(ProtocolError::UnknownCommand, false, consumed),
    }
}

/// `lru_crawler enable|disable|sleep N|tocrawl N|crawl <ids|all>|metadump <ids|all|hash>`.
pub(super) fn lru_crawler<'a>(tokens: &Tokens<'a>, consumed: usize) -> Frame<'a> {
    let command = match (tokens.count, tokens.get(1.min(tokens.count - 1))) {
        (2, b"enable") => CrawlerCommand::Enable,
        (2, b"disable") => CrawlerCommand::Disable,
        (3, b"crawl") => CrawlerCommand::Crawl(class_list(tokens.get(2))),
        (3, b"metadump") => CrawlerCommand::Metadump(class_list(tokens.get(2))),
        (3, b"tocrawl") => match strtoul32(tokens.get(2)) {
            Some(items) => CrawlerCommand::Tocrawl(items),
            None => return invalid(ProtocolError::BadFormat, false, consumed),
        },
        (3, b"sleep") => match strtoul32(tokens.get(2)) {
            Some(microseconds) if microseconds > CRAWLER_SLEEP_MAX => {
                return invalid(ProtocolError::CrawlerSleepTooLong, false, consumed);
            }
            Some(microseconds) => CrawlerCommand::Sleep(microseconds),
            None => return invalid(ProtocolError::BadFormat, false, consumed),
        },
        _ => return invalid(ProtocolError::UnknownCommand, false, consumed),
    };
    request(Request::LruCrawler(command), consumed)
}

/// `all`, `hash`, or comma-separated ids from 1 to 63 (empty items skipped, as
/// memcached's `strtok`).
fn class_list(text: &[u8]) -> ClassList {
    match text {
        b"all" => return ClassList::All,
        b"hash" => return ClassList::Hash,
        _ => {}
    }
    let mut ids = 0u64;
    for id in text.split(|&byte| byte == b',').filter(|id| !id.is_empty()) {
        match strtoul32(id) {
            Some(id) if (1..CRAWLER_CLASS_LIMIT).contains(&id) => ids |= 1 << id,
            _ => return ClassList::Invalid,
        }
    }
    ClassList::Ids(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_lists_follow_memcached() {
        assert_eq!(class_list(b"all"), ClassList::All);
        assert_eq!(class_list(b"hash"), ClassList::Hash);
        assert_eq!(class_list(b"hashx"), ClassList::Invalid);
        assert_eq!(class_list(b"1,,3"), ClassList::Ids(0b1010));
        assert_eq!(class_list(b","), ClassList::Ids(0));
        assert_eq!(class_list(b"63"), ClassList::Ids(1 << 63));
        assert_eq!(class_list(b"0"), ClassList::Invalid);
        assert_eq!(class_list(b"64"), ClassList::Invalid);
        assert_eq!(class_list(b"1,x"), ClassList::Invalid);
    }
}
