//! The span arithmetic, and the pager against an in-memory keyspace with etcd's Range semantics.

use super::*;

fn key(span: Span, cursor: &[u8]) -> Vec<u8> {
    match span.end_after(cursor) {
        End::Key(k) => k,
        End::Unbounded => panic!("unbounded"),
    }
}

#[test]
fn prefix_end_is_etcds() {
    assert_eq!(prefix_end(b"/registry/"), b"/registry0".to_vec());
    assert_eq!(prefix_end(&[0x61, 0xff]), vec![0x62]);
    assert_eq!(prefix_end(&[0xff]), Vec::<u8>::new());
}

#[test]
fn a_first_span_ends_just_after_its_cursor() {
    let cursor = b"/registry/pods/ns/p-1".to_vec();
    let end = key(Span::first(&cursor), &cursor);
    assert!(end > cursor);
    // Only bytes past the cursor's own change.
    assert_eq!(&end[..cursor.len()], cursor.as_slice());
}

#[test]
fn the_sum_carries_into_the_cursor_and_past_the_keyspace() {
    let span = Span {
        at: 0,
        mantissa: 1 << 63,
    }; // half the keyspace
    assert_eq!(key(span, b"\x10")[0], 0x90);
    assert_eq!(span.end_after(b"\x90"), End::Unbounded);
    let one = Span {
        at: 2,
        mantissa: 1 << 56,
    }; // 1 × 256^-3: the third byte
    assert_eq!(key(one, b"a\xff\xff"), [&b"b"[..], &[0; 9]].concat());
}

#[test]
fn spans_shrink_where_keys_are_dense_and_grow_across_gaps() {
    let cursor = b"/registry/configmaps/ns-1/cm-1000".to_vec();
    let span = Span::first(&cursor).next(0, 1000);
    let wider = span.next(0, 1000);
    assert!(key(wider, &cursor) > key(span, &cursor));
    let narrower = wider.next(100_000, 1000);
    assert!(key(narrower, &cursor) < key(span, &cursor));
    assert!(key(narrower, &cursor) > cursor);
    // Growth is bounded even when a page held far fewer keys than wanted.
    assert_eq!(span.next(1, 1_000_000), span.next(0, 1));
}

#[test]
fn empty_pages_reach_the_end_of_the_keyspace_in_a_bounded_number_of_requests() {
    let cursor = b"/registry/configmaps0".to_vec();
    let mut span = Span::first(&cursor);
    let mut requests = 0;
    while let End::Key(_) = span.end_after(&cursor) {
        span = span.next(0, 1000);
        requests += 1;
        assert!(
            requests <= 4 * (cursor.len() + 3) + 1,
            "{requests} requests"
        );
    }
    // And the widest span stays unbounded.
    assert_eq!(span.next(0, 1000).end_after(&cursor), End::Unbounded);
}

#[test]
fn the_width_between_two_keys_added_to_the_first_gives_the_second() {
    for (from, to) in [
        (
            &b"/registry/configmaps/ns-1/cm-100"[..],
            &b"/registry/configmaps/ns-1/cm-200"[..],
        ),
        (b"/registry/configmaps/", b"/registry/pods/ns/p"),
        (b"a", b"a\x00\x01"),
        (b"\x00", b"\x7f\xff"),
    ] {
        let end = key(Span::between(from, to).unwrap(), from);
        // Within the span's precision: the first bytes agree.
        let agree = end.iter().zip(to).take_while(|(a, b)| a == b).count();
        assert!(
            agree >= to.len().min(6),
            "{from:?} + ({from:?}..{to:?}) = {end:?}"
        );
    }
    assert_eq!(Span::between(b"/b", b"/a"), None);
    assert_eq!(Span::between(b"/a", b"/a"), None);
}

#[test]
fn a_page_never_ends_past_the_scan() {
    let span = Span {
        at: 0,
        mantissa: 1 << 62,
    }; // a quarter of the keyspace
    assert_eq!(page_end(b"/a", span, b"/b"), (b"/b".to_vec(), true));
    assert_eq!(page_end(b"\xff", span, b""), (Vec::new(), true));
    let (end, last) = page_end(b"/a", Span::first(b"/a"), b"/b");
    assert!(!last && end.as_slice() > b"/a".as_slice() && end.as_slice() < b"/b".as_slice());
}

/// etcd's Range over a sorted keyspace: at most `limit` keys of `[from, end)`, whether more
/// follow, and how many the range holds (and so how many keys etcd walked).
fn range(keys: &std::collections::BTreeSet<Vec<u8>>, r: &PageRequest) -> (Vec<Vec<u8>>, bool, i64) {
    let in_range: Vec<&Vec<u8>> = keys
        .range(r.from.clone()..)
        .take_while(|k| r.end.is_empty() || k.as_slice() < r.end.as_slice())
        .collect();
    let page: Vec<Vec<u8>> = in_range
        .iter()
        .take(r.limit as usize)
        .map(|k| k.to_vec())
        .collect();
    (
        page,
        in_range.len() > r.limit as usize,
        in_range.len() as i64,
    )
}

/// Scans `keys` one page at a time, as `analyze` did; returns the keys in the order returned,
/// the requests made and the keys etcd walked to count them.
fn scan(
    keys: &std::collections::BTreeSet<Vec<u8>>,
    prefix: &[u8],
    max: i64,
) -> (Vec<Vec<u8>>, usize, i64) {
    scan_with(keys, prefix, max, 1, false)
}

/// The answer `analyze` gives the pager for `page`.
fn answer<'a>(
    request: &PageRequest,
    page: &'a [Vec<u8>],
    more: bool,
    count: i64,
) -> PageAnswer<'a> {
    PageAnswer {
        limit: request.limit,
        keys: page.len(),
        bytes: page.iter().map(|k| k.len() as u64 + 100).sum(),
        late_key: late_key(page.len()).map(|(at, after)| (page[at].as_slice(), after)),
        last_key: page.last().map(|k| k.as_slice()),
        more,
        count,
    }
}

/// Scans `keys` with `out` requests out at once, answering the oldest first or, with
/// `newest_first`, the newest; returns what [`scan`] does.
fn scan_with(
    keys: &std::collections::BTreeSet<Vec<u8>>,
    prefix: &[u8],
    max: i64,
    out: usize,
    newest_first: bool,
) -> (Vec<Vec<u8>>, usize, i64) {
    let mut pager = Pager::new(prefix, max);
    let (mut seen, mut requests, mut walked) = (Vec::new(), 0, 0);
    let mut pending: Vec<PageRequest> = Vec::new();
    loop {
        while pending.len() < out {
            match pager.next_read() {
                Next::Read(request) => pending.push(request),
                Next::Wait => break,
                Next::Done => {
                    assert!(pending.is_empty(), "done with requests out");
                    return (seen, requests, walked);
                }
            }
        }
        let request = if newest_first {
            pending.pop().unwrap()
        } else {
            pending.remove(0)
        };
        let (page, more, count) = range(keys, &request);
        requests += 1;
        walked += count;
        assert!(requests < 100_000, "the scan does not end");
        pager.record(&request, &answer(&request, &page, more, count));
        seen.extend(page);
    }
}

#[test]
fn requests_out_at_once_never_overlap_and_miss_no_key() {
    let keys = kubernetes_like(50_000);
    let all: Vec<Vec<u8>> = keys.iter().cloned().collect();
    for (max, out, newest_first) in [
        (7, 2, false),
        (1000, 2, true),
        (1000, 3, false),
        (50_000, 2, true),
    ] {
        let (mut seen, _, walked) = scan_with(&keys, b"", max, out, newest_first);
        seen.sort();
        // Sorted, every key once: none twice (overlap), none missing.
        assert_eq!(
            seen, all,
            "pages of {max}, {out} out, newest first: {newest_first}"
        );
        // A request out with another was sized before the other's answer: at most a little
        // more walking than one at a time (measured 1.0-1.45x: 3.28 against 3.26 keys walked
        // per key at 1 000-key pages).
        let (_, _, one_at_a_time) = scan(&keys, b"", max);
        assert!(
            walked < 2 * one_at_a_time,
            "etcd walked {walked} keys, {one_at_a_time} one page at a time"
        );
    }
}

fn kubernetes_like(n: u64) -> std::collections::BTreeSet<Vec<u8>> {
    let mut keys = std::collections::BTreeSet::new();
    for k in 0..n {
        let key = match k % 7 {
            0..=2 => format!("/registry/configmaps/ns-{}/cm-{k}", k % 100),
            3 => format!("/registry/pods/ns-{}/pod-{k}", k % 3),
            4 => format!("/registry/example.com/widgets/w-{k:x}"),
            5 => format!("/registry/events/default/ev.{k}.{}", k * 7919 % 1000),
            _ => format!("/other/{}", k % 11),
        };
        keys.insert(key.into_bytes());
    }
    for k in ["compact_rev_key", "\u{0}", "\u{ff}\u{ff}", "health"] {
        keys.insert(k.as_bytes().to_vec());
    }
    keys.insert(vec![0xff; 40]);
    keys
}

#[test]
fn a_scan_returns_every_key_once_in_order() {
    let keys = kubernetes_like(50_000);
    for max in [1, 7, 1000, 50_000] {
        let (seen, _, _) = scan(&keys, b"", max);
        assert_eq!(
            seen,
            keys.iter().cloned().collect::<Vec<_>>(),
            "pages of {max}"
        );
    }
    let (seen, _, _) = scan(&keys, b"/registry/pods/", 1000);
    let pods: Vec<Vec<u8>> = keys
        .iter()
        .filter(|k| k.starts_with(b"/registry/pods/"))
        .cloned()
        .collect();
    assert_eq!(seen, pods);
    assert!(
        scan(&std::collections::BTreeSet::new(), b"", 1000)
            .0
            .is_empty()
    );
}

#[test]
fn etcd_counts_about_what_it_returns() {
    // With an open end etcd would walk the rest of the keyspace on every page: here ~50
    // pages of 10 000 keys would walk ~13 M keys. Spans walked 3.3 keys per key returned; since
    // pages end where the cursor's value of the span's byte ends, 3.0.
    let keys = kubernetes_like(600_000);
    let (seen, requests, walked) = scan(&keys, b"", 10_000);
    assert_eq!(seen.len(), keys.len());
    assert!(
        walked < 7 * keys.len() as i64 / 2,
        "etcd walked {walked} keys for {}",
        keys.len()
    );
    assert!(requests < 1000, "{requests} requests");
}

/// The benchmark's keyspace (`scripts/bench.sh analyze`): four resources, each in 100
/// namespaces numbered in decimal, so that `ns-3`, `ns-30` … `ns-39` sit between `ns-29` and
/// `ns-4`: gaps far wider than the keys under each prefix.
fn numbered_namespaces(n: u64) -> std::collections::BTreeSet<Vec<u8>> {
    (0..n)
        .map(|k| {
            match k % 4 {
                0 => format!("/registry/configmaps/ns-{}/cm-{k}", k % 100),
                1 => format!("/registry/pods/ns-{}/pod-{k}", k % 100),
                2 => format!("/registry/example.com/widgets/ns-{}/w-{k}", k % 100),
                _ => format!("/registry/events/ns-{}/ev-{k}", k % 100),
            }
            .into_bytes()
        })
        .collect()
}

#[test]
fn past_a_gap_a_page_reaches_one_sibling_prefix_not_several() {
    // A span grown across the gap after `ns-29` would reach `ns-9`; the page stops at `ns-3`'s
    // end instead.
    let cursor = b"/registry/pods/ns-2:".to_vec();
    let wide = Span::between(&cursor, b"/registry/pods/ns-9k").unwrap();
    assert_eq!(
        page_end(&cursor, wide, b""),
        (b"/registry/pods/ns-3".to_vec(), false)
    );
    // The boundary is after the cursor however short the cursor or deep the span, and never
    // after `cursor + span`.
    for cursor in [
        &b""[..],
        b"\x00",
        b"a",
        b"a\xff",
        b"/registry/pods/ns-1/p",
        b"\xfe\xff",
    ] {
        for at in 0..24 {
            for mantissa in [LOW, LOW + 1, 1 << 56, HIGH - 1] {
                let span = Span { at, mantissa };
                let Some(boundary) = span.next_boundary(cursor) else {
                    continue;
                };
                assert!(
                    boundary.as_slice() > cursor,
                    "{cursor:?} {span:?}: {boundary:?}"
                );
                if let End::Key(end) = span.end_after(cursor) {
                    assert!(
                        boundary <= end,
                        "{cursor:?} {span:?}: {boundary:?} > {end:?}"
                    );
                }
            }
        }
    }
    // All 0xff up to the leading byte: nothing after it but the end of the keyspace.
    assert_eq!(
        Span {
            at: 0,
            mantissa: HIGH - 1
        }
        .next_boundary(b"\xff"),
        None
    );
}

#[test]
fn between_numbered_namespaces_etcd_counts_about_three_keys_per_key_returned() {
    // Of the ~3.4 keys counted per key returned, 1 is the key itself and ~1 the first jump into
    // `/registry/` (a single prefix holds every key, so whatever lands in it counts all).
    // Without the stop at the next sibling: 4.2 one page at a time, 4.8 two at a time.
    let keys = numbered_namespaces(200_000);
    for out in [1, 2] {
        let (seen, requests, walked) = scan_with(&keys, b"", 10_000, out, false);
        assert_eq!(seen.len(), keys.len());
        let per_key = walked as f64 / keys.len() as f64;
        assert!(
            per_key < 3.6,
            "{out} out: {per_key:.2} keys counted per key returned"
        );
        assert!(requests < 1_500, "{out} out: {requests} requests");
    }
}

#[test]
fn a_reader_waits_while_a_page_that_may_give_keys_back_is_out() {
    // The second reader of a scan used to stop when nothing was unread, and from the first
    // page that reached the end of the keyspace on, the scan went on with one reader.
    let mut pager = Pager::new(b"", 10);
    let mut empty = 0;
    let last = loop {
        match pager.next_read() {
            Next::Read(request) if request.end.is_empty() => break request,
            Next::Read(request) => pager.record(&request, &answer(&request, &[], false, 0)),
            other => panic!("{other:?} with the keyspace unread"),
        }
        empty += 1;
        assert!(
            empty < 1000,
            "empty pages never reach the end of the keyspace"
        );
    };
    // Only the page to the end of the keyspace is out: wait for it, it may give keys back.
    assert_eq!(pager.next_read(), Next::Wait);
    let keys = [b"\xf0".to_vec()];
    pager.record(&last, &answer(&last, &keys, true, 11));
    let Next::Read(mut rest) = pager.next_read() else {
        panic!("the rest of a page cut short is not read");
    };
    assert_eq!(rest.from, b"\xf0\x00");
    for _ in 0..1000 {
        pager.record(&rest, &answer(&rest, &[], false, 0));
        match pager.next_read() {
            Next::Read(request) => rest = request,
            Next::Done => return,
            Next::Wait => panic!("told to wait with no page out"),
        }
    }
    panic!("the rest of the keyspace is never read");
}
