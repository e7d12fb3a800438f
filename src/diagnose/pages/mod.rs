//! Where each page of a keyspace scan ends: at the end of the cursor's value of one byte, the
//! byte chosen by a span of the keyspace sized to hold about one page of keys, learnt from the
//! key counts etcd returns.
//!
//! Why: etcd counts every key between a Range's start and its end, even when it returns only
//! `limit` of them (the response's `count`; Kubernetes reads it as `remainingItemCount`). Paging
//! with an open end therefore makes etcd walk the rest of the keyspace on every page: quadratic
//! in the key count, and the largest cost of a scan (measured at 1 M keys: 115 s with 1 000-key
//! pages). Bounding each page to its resource group still counted the rest of the group on
//! every page and the rest of the keyspace on every group's probe. A page that ends about one
//! page ahead makes etcd count about what it returns, wherever the keys are dense or sparse.
//!
//! Keys are read as base-256 fractions (`"ab"` is 0.61 62 in base 256), so a span is a number
//! and `cursor + span` is a key. Each response says how many keys the span held, and the next
//! span is scaled by `wanted / held`. Keys cluster under prefixes separated by gaps far wider
//! than the keys under them, so the page does not run to `cursor + span` but stops where the
//! cursor's value of the span's leading byte ends ([`Span::next_boundary`]): past a gap, it
//! covers at most the rest of one sibling prefix. The span is a guess that only changes the
//! cost, never the result, because the next page starts exactly where this one stopped.

use std::collections::BTreeMap;

/// A width of the keyspace: `mantissa × 256^-(at + 8)`, i.e. the mantissa's 8 big-endian bytes
/// added at byte offsets `at..at + 8` of a key. The mantissa is kept in `[2^55, 2^63)`, so a
/// span keeps 7 bytes of precision however deep in the keys it is. `at < 0`: wider than the
/// whole keyspace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Span {
    at: i64,
    mantissa: u64,
}

const LOW: u64 = 1 << 55;
const HIGH: u64 = 1 << 63;
/// How much a span may grow after one response. A page with no key grows it 4×, so the page
/// end moves up a byte every fourth empty page (a gap of 8 bytes between two resources is
/// crossed in ~32 cheap requests); larger steps land further into the dense keys past a gap,
/// which etcd then counts (in-memory runs of the scan before pages stopped at a byte's end: 4×
/// walked 3.3 keys per key returned, 16× 4.7; 2× walked 3.4–3.7 in twice the requests).
const MAX_GROWTH: f64 = 4.0;

/// What [`Span::end_after`] gives: a key to end the page at, or the end of the keyspace.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    Key(Vec<u8>),
    Unbounded,
}

impl Span {
    /// A first span just past `cursor`: one unit of its byte after the last, which the
    /// responses then widen to the keys' real density.
    pub fn first(cursor: &[u8]) -> Span {
        Span {
            at: cursor.len() as i64 + 1,
            mantissa: LOW,
        }
    }

    /// The span after a response that found `held` keys in this one, aiming for `wanted`.
    pub fn next(self, held: i64, wanted: i64) -> Span {
        let factor = if held <= 0 {
            MAX_GROWTH
        } else {
            (wanted.max(1) as f64 / held as f64).min(MAX_GROWTH)
        };
        self.scaled(factor)
    }

    /// The width from `from` to `to`; `None` unless `to` comes after `from`.
    pub fn between(from: &[u8], to: &[u8]) -> Option<Span> {
        let at = from
            .iter()
            .zip(to)
            .position(|(a, b)| a != b)
            .unwrap_or(from.len().min(to.len()));
        let word = |key: &[u8]| {
            let mut bytes = [0u8; 8];
            for (slot, byte) in bytes.iter_mut().zip(key.iter().skip(at)) {
                *slot = *byte;
            }
            u64::from_be_bytes(bytes)
        };
        // Both share their first `at` bytes; the next 8 bytes of each, as numbers, differ by the
        // width (to within 256^-(at + 8), which a span does not resolve anyway).
        let (a, b) = (word(from), word(to));
        (b > a).then(|| {
            Span {
                at: at as i64,
                mantissa: b - a,
            }
            .scaled(1.0)
        })
    }

    /// The first key past every key that shares the cursor's bytes up to and including the
    /// span's leading byte (the cursor padded with zero bytes if shorter): where the cursor's
    /// value of that byte ends. `None` for spans wider than a unit of the first byte, or when
    /// those bytes are all `0xff`. Always after the cursor, and never after `cursor + self`: a
    /// span is at least one unit of its leading byte.
    ///
    /// Why a page ends here rather than at `cursor + self`: a span that has grown across a gap
    /// reaches several siblings past it at once (from `ns-2:` to `ns-9k` in the benchmark's
    /// keyspace: 190 000 keys counted for 16 000 returned). Ending here, a page covers at most
    /// the rest of one; the span still chooses the byte, and moves up a byte every fourth
    /// empty page. In-memory scans of the benchmark's keyspace (test
    /// `between_numbered_namespaces_etcd_counts_about_three_keys_per_key_returned`): 3.4 keys
    /// counted per key returned against 4.2–4.8, in as many requests. Ending one sibling later
    /// counted 3.7–3.9; at the end of the byte before (the parent prefix), 4.2–4.8 again;
    /// cutting only the pages that follow an empty one, 4.1–4.8.
    pub fn next_boundary(self, cursor: &[u8]) -> Option<Vec<u8>> {
        let at = usize::try_from(self.at).ok()?;
        // The mantissa's top byte sits at `at`; below 2^56 it is zero and the next one leads.
        let lead = if self.mantissa >= 1 << 56 { at } else { at + 1 };
        let mut prefix = cursor[..cursor.len().min(lead + 1)].to_vec();
        prefix.resize(lead + 1, 0);
        let boundary = prefix_end(&prefix);
        (!boundary.is_empty()).then_some(boundary)
    }

    fn scaled(self, factor: f64) -> Span {
        let mut mantissa = (self.mantissa as f64 * factor).max(1.0);
        let mut at = self.at;
        while mantissa >= HIGH as f64 {
            mantissa /= 256.0;
            at -= 1;
        }
        while mantissa < LOW as f64 {
            mantissa *= 256.0;
            at += 1;
        }
        if at < 0 {
            // Wider than the whole keyspace: no end. Kept one step past it, so a shrinking
            // factor brings it back at once.
            return Span {
                at: -1,
                mantissa: LOW,
            };
        }
        Span {
            at,
            mantissa: mantissa as u64,
        }
    }

    /// The key `cursor + self`, strictly after `cursor`; `Unbounded` when the sum runs past the
    /// last possible key.
    pub fn end_after(self, cursor: &[u8]) -> End {
        let Ok(at) = usize::try_from(self.at) else {
            return End::Unbounded;
        };
        let mut end = cursor.to_vec();
        end.resize(end.len().max(at + 8), 0);
        let mut carry = 0u16;
        for (i, byte) in self.mantissa.to_be_bytes().iter().enumerate().rev() {
            let sum = end[at + i] as u16 + *byte as u16 + carry;
            end[at + i] = sum as u8;
            carry = sum >> 8;
        }
        for slot in end[..at].iter_mut().rev() {
            if carry == 0 {
                break;
            }
            let sum = *slot as u16 + carry;
            *slot = sum as u8;
            carry = sum >> 8;
        }
        if carry > 0 {
            End::Unbounded
        } else {
            End::Key(end)
        }
    }
}

/// What one page should carry: few round trips, flat memory. With spans, a page's cost in etcd
/// no longer grows with what lies after it, so pages need not be large (measured at 1 M keys,
/// one run: 8 000-key pages 10.6 s and 17 MiB, 16 000 (~2 MiB) 7.6 s and 22 MiB, 24 000 9.3 s
/// and 28 MiB, ~4 MiB 8.9 s and 31 MiB; etcdctl keys-only 8.8 s in the same run).
const PAGE_TARGET_BYTES: u64 = 2 << 20;

/// The scan's state: which ranges are still unread, and how wide a page should be. Pure, so
/// the paging is tested against an in-memory keyspace with etcd's Range semantics.
///
/// Several requests may be out at once (`analyze` keeps two, so that etcd serves them on two
/// cores): each request takes the front of the first unread range, and a page cut short by its
/// limit gives the rest of its range back, so the ranges asked for never overlap and together
/// cover the scan.
#[derive(Debug)]
pub struct Pager {
    /// Disjoint `from → to` ranges not yet asked for (`to` empty: the end of the keyspace).
    unread: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Requests handed out and not yet recorded: each may give a range back.
    out: usize,
    span: Span,
    limit: i64,
    max_page_keys: i64,
}

/// What a reader does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Read this range.
    Read(PageRequest),
    /// Nothing is unread now, but a request still out may give some back: wait for its answer
    /// to be recorded, then ask again.
    Wait,
    /// Every range has been read and recorded.
    Done,
}

/// One Range request: keys in `[from, end)` (`end` empty: to the end of the keyspace), at most
/// `limit` of them.
#[derive(Debug, Clone, PartialEq)]
pub struct PageRequest {
    pub from: Vec<u8>,
    pub end: Vec<u8>,
    pub limit: i64,
}

/// What etcd answered to a [`PageRequest`].
#[derive(Debug)]
pub struct PageAnswer<'a> {
    /// The limit the answer was given for (smaller than asked after "too large" retries).
    pub limit: i64,
    pub keys: usize,
    /// Key and value bytes of the keys returned.
    pub bytes: u64,
    /// A key three quarters into the page, and how many keys after it the page returned: the
    /// density near the page's end, which predicts the next range better than the whole page
    /// (whose start may lie in another resource's keys).
    pub late_key: Option<(&'a [u8], usize)>,
    pub last_key: Option<&'a [u8]>,
    pub more: bool,
    /// The keys the whole range holds.
    pub count: i64,
}

impl Pager {
    /// A scan of the keys under `prefix` (empty: every key), at most `max_page_keys` a page.
    pub fn new(prefix: &[u8], max_page_keys: i64) -> Pager {
        let (from, to) = if prefix.is_empty() {
            (vec![0u8], Vec::new())
        } else {
            (prefix.to_vec(), prefix_end(prefix))
        };
        Pager {
            span: Span::first(&from),
            unread: BTreeMap::from([(from, to)]),
            out: 0,
            limit: max_page_keys.clamp(1, 500),
            max_page_keys: max_page_keys.max(1),
        }
    }

    /// The next range to read, taken from the unread ones. When none is left the scan is over
    /// only if no request is still out, since a page cut short gives the rest of its range back
    /// (see [`Pager::record`]); until then a reader waits rather than stopping, or the scan would
    /// go on with one reader after the first page that reaches the end of the keyspace.
    pub fn next_read(&mut self) -> Next {
        let Some((from, to)) = self.unread.pop_first() else {
            return if self.out == 0 {
                Next::Done
            } else {
                Next::Wait
            };
        };
        let (end, whole) = page_end(&from, self.span, &to);
        if !whole {
            self.unread.insert(end.clone(), to);
        }
        self.out += 1;
        Next::Read(PageRequest {
            from,
            end,
            limit: self.limit,
        })
    }

    /// Learns from `answer` and gives back what its page did not reach. The next pages carry
    /// ~2 MiB of the keys seen, over a span expected to hold about that many keys.
    pub fn record(&mut self, request: &PageRequest, answer: &PageAnswer) {
        self.out = self.out.saturating_sub(1);
        self.limit = answer.limit;
        if answer.keys > 0 {
            let average = (answer.bytes / answer.keys as u64).max(1);
            self.limit = ((PAGE_TARGET_BYTES / average) as i64).clamp(1, self.max_page_keys);
        }
        // A full page: the spacing of its last keys is the density, whatever the range held
        // before or after them. Otherwise the whole range held `count` keys.
        self.span = match (answer.more, answer.late_key, answer.last_key) {
            (true, Some((late, after)), Some(last)) if after > 0 => Span::between(late, last)
                .map(|held| held.scaled(self.limit as f64 / after as f64))
                .unwrap_or(self.span),
            _ => self.span.next(answer.count, self.limit),
        };
        // Cut short by its limit: the rest of its range, from just after its last key, is
        // unread again. Otherwise every key of the range has been returned.
        if let (true, Some(last)) = (answer.more, answer.last_key) {
            self.unread
                .insert([last, &[0]].concat(), request.end.clone());
        }
    }
}

/// Which of a page's `keys` gives its late density: the index three quarters in, and how many
/// keys follow it.
pub fn late_key(keys: usize) -> Option<(usize, usize)> {
    let at = keys * 3 / 4;
    (at < keys).then(|| (at, keys - 1 - at))
}

/// The end of the next page: where the cursor's value of the span's leading byte ends
/// ([`Span::next_boundary`]), or `cursor + span` for spans too wide to have one; never past the
/// scan's own end (`scan_end` empty: the end of the keyspace). Returns the end and whether it is
/// the scan's.
pub fn page_end(cursor: &[u8], span: Span, scan_end: &[u8]) -> (Vec<u8>, bool) {
    let end = match span.next_boundary(cursor) {
        Some(boundary) => End::Key(boundary),
        None => span.end_after(cursor),
    };
    match end {
        End::Key(end) if scan_end.is_empty() || end.as_slice() < scan_end => (end, false),
        _ => (scan_end.to_vec(), true),
    }
}

/// The range end that covers every key starting with `prefix` (etcd's `GetPrefixRangeEnd`);
/// empty when there is none (the rest of the keyspace).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests;
