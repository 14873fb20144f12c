//! Splitting a request line into tokens as memcached's `tokenize_command` does: the
//! one tokenizer of the text and meta parsers and of multiget key lists.

/// memcached's token limit per line (the rest of a longer line is one last token).
const MAX_TOKENS: usize = 24;

/// The space-separated words of a line, lazily (a multiget may name thousands of keys).
pub(super) fn words(line: &[u8]) -> Words<'_> {
    Words(line)
}

/// Iterator of [`words`]. Words are keys and numbers, short enough that a plain scan
/// for the space beats setting up a vectorised search.
pub(super) struct Words<'a>(&'a [u8]);

impl<'a> Iterator for Words<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        let mut rest = self.0;
        while let [b' ', tail @ ..] = rest {
            rest = tail;
        }
        if rest.is_empty() {
            self.0 = rest;
            return None;
        }
        let end = rest
            .iter()
            .position(|&byte| byte == b' ')
            .unwrap_or(rest.len());
        self.0 = &rest[end..];
        Some(&rest[..end])
    }
}

/// The part of a line after its first `skip` words (a multiget's key list, a meta
/// request's flags).
pub(super) fn after_words(line: &[u8], skip: usize) -> &[u8] {
    let mut at = 0;
    for _ in 0..skip {
        while at < line.len() && line[at] == b' ' {
            at += 1;
        }
        while at < line.len() && line[at] != b' ' {
            at += 1;
        }
    }
    &line[at..]
}

/// Up to `MAX_TOKENS - 1` space-separated tokens of a line, without allocating.
pub(super) struct Tokens<'a> {
    items: [&'a [u8]; MAX_TOKENS],
    pub(super) count: usize,
}

impl<'a> Tokens<'a> {
    pub(super) fn split(line: &'a [u8]) -> Self {
        let mut items: [&'a [u8]; MAX_TOKENS] = [&[]; MAX_TOKENS];
        let mut count = 0;
        let mut at = 0;
        while at < line.len() {
            while at < line.len() && line[at] == b' ' {
                at += 1;
            }
            if at == line.len() {
                break;
            }
            if count == MAX_TOKENS - 2 {
                // memcached keeps the rest of the line as one last token.
                items[count] = &line[at..];
                count += 1;
                break;
            }
            // Tokens are short: a plain scan beats setting up a vectorised search.
            let end = line[at..]
                .iter()
                .position(|&byte| byte == b' ')
                .map_or(line.len(), |offset| at + offset);
            items[count] = &line[at..end];
            count += 1;
            at = end;
        }
        Tokens { items, count }
    }

    pub(super) fn get(&self, index: usize) -> &'a [u8] {
        self.items[index]
    }

    /// memcached's `set_noreply_maybe`: the last token is exactly `noreply`.
    pub(super) fn noreply(&self) -> bool {
        self.count > 0 && self.items[self.count - 1] == b"noreply"
    }
}
