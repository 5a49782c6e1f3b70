//! Table tests for W3C `baggage` (SPECS.md section 2).

mod support;

use http::{HeaderMap, HeaderValue};
use meshtrace::propagation::baggage::{
    encode_baggage, parse_baggage, parse_member, BaggageError as E, MAX_BYTES, MAX_MEMBERS,
};
use meshtrace::MeshPropagator;
use opentelemetry::baggage::{Baggage, BaggageExt};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::Context;
use std::collections::{BTreeMap, HashMap};

use support::propagation::errors_of;
use support::tables::{report, show_lines};

/// Baggage as a sorted map key -> (value, properties), for comparison.
type Flat = BTreeMap<String, (String, String)>;

fn flat(b: &Baggage) -> Flat {
    b.iter()
        .map(|(k, (v, m))| (k.to_string(), (v.to_string(), m.as_str().to_owned())))
        .collect()
}

fn flat_of(entries: &[(&str, &str, &str)]) -> Flat {
    entries
        .iter()
        .map(|(k, v, p)| (k.to_string(), (v.to_string(), p.to_string())))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// parse_member
// ---------------------------------------------------------------------------------------------

/// (key, decoded value, properties)
type Parsed = (&'static str, &'static str, &'static str);

#[rustfmt::skip]
const MEMBER: &[(&str, Result<Parsed, E>)] = &[
    ("key=value",                   Ok(("key", "value", ""))),
    (" key = value ",               Ok(("key", "value", ""))),
    ("\tkey\t=\tvalue\t",           Ok(("key", "value", ""))),
    ("K=V",                         Ok(("K", "V", ""))),
    ("k!#$&'*+-.^_`|~=v",           Ok(("k!#$&'*+-.^_`|~", "v", ""))),
    ("k=",                          Ok(("k", "", ""))),
    // `=` inside the value
    ("k=a=b",                       Ok(("k", "a=b", ""))),
    ("k=a==b=",                     Ok(("k", "a==b=", ""))),
    ("k==",                         Ok(("k", "=", ""))),
    // percent-decoding
    ("k=a%20b",                     Ok(("k", "a b", ""))),
    ("k=100%25",                    Ok(("k", "100%", ""))),
    ("k=x%3Dy",                     Ok(("k", "x=y", ""))),
    ("k=%2C%3B%22%5C",              Ok(("k", ",;\"\\", ""))),
    ("k=%E2%82%AC",                 Ok(("k", "\u{20ac}", ""))),
    ("k=%e2%82%ac",                 Ok(("k", "\u{20ac}", ""))),
    ("k=%F0%9F%98%80",              Ok(("k", "\u{1f600}", ""))),
    ("k=%0A",                       Ok(("k", "\n", ""))),
    // invalid UTF-8 after decoding becomes U+FFFD
    ("k=%FF",                       Ok(("k", "\u{fffd}", ""))),
    ("k=%C3",                       Ok(("k", "\u{fffd}", ""))),
    ("k=a%C3%28b",                  Ok(("k", "a\u{fffd}(b", ""))),
    ("k=%ED%A0%80",                 Ok(("k", "\u{fffd}\u{fffd}\u{fffd}", ""))),
    ("k=%C0%AF",                    Ok(("k", "\u{fffd}\u{fffd}", ""))),
    // properties kept
    ("k=v;p",                       Ok(("k", "v", "p"))),
    ("k=v;p=1;q",                   Ok(("k", "v", "p=1;q"))),
    ("k=v ; p = 1 ",                Ok(("k", "v", "p = 1"))),
    ("k=a%20b;ttl=3",               Ok(("k", "a b", "ttl=3"))),
    ("k=v;p=a=b",                   Ok(("k", "v", "p=a=b"))),
    // invalid members
    ("novalue",                     Err(E::MissingEquals)),
    ("",                            Err(E::MissingEquals)),
    (";p",                          Err(E::MissingEquals)),
    ("k;p=v",                       Err(E::MissingEquals)),
    ("=v",                          Err(E::InvalidKey)),
    (" =v",                         Err(E::InvalidKey)),
    ("k y=v",                       Err(E::InvalidKey)),
    ("k(=v",                        Err(E::InvalidKey)),
    ("k:=v",                        Err(E::InvalidKey)),
    ("k\u{e9}=v",                   Err(E::InvalidKey)),
    ("k=a b",                       Err(E::InvalidValue)),
    ("k=a\"b",                      Err(E::InvalidValue)),
    ("k=a\\b",                      Err(E::InvalidValue)),
    ("k=a\tb",                      Err(E::InvalidValue)),
    ("k=caf\u{e9}",                 Err(E::InvalidValue)),
    ("k=v;=x",                      Err(E::InvalidProperty)),
    ("k=v;p q",                     Err(E::InvalidProperty)),
    ("k=v;p=a b",                   Err(E::InvalidProperty)),
];

#[test]
fn parse_member_vectors() {
    let mut failures = Vec::new();
    for (i, (input, want)) in MEMBER.iter().enumerate() {
        let got = parse_member(input);
        let got = got
            .as_ref()
            .map(|m| (m.key, m.value.as_str(), m.properties))
            .map_err(|e| *e);
        if got != *want {
            failures.push(format!("[{i}] {input:?}: want {want:?}, got {got:?}"));
        }
    }
    report("MEMBER", failures);
}

// ---------------------------------------------------------------------------------------------
// Whole headers, through parse_baggage and MeshPropagator
// ---------------------------------------------------------------------------------------------

/// (header lines, expected members (key, value, properties), dropped count)
type HeaderRow = (
    &'static [&'static [u8]],
    &'static [(&'static str, &'static str, &'static str)],
    usize,
);

#[rustfmt::skip]
const HEADERS: &[HeaderRow] = &[
    (&[b"a=1"],                               &[("a", "1", "")], 0),
    (&[b"a=1,b=2"],                           &[("a", "1", ""), ("b", "2", "")], 0),
    (&[b" a = 1 ,\tb=2\t"],                   &[("a", "1", ""), ("b", "2", "")], 0),
    (&[b"a=1", b"b=2"],                       &[("a", "1", ""), ("b", "2", "")], 0),
    (&[b"a=1", b"", b"b=2", b"c=3"],          &[("a", "1", ""), ("b", "2", ""), ("c", "3", "")], 0),
    (&[b"a=1,,b=2,"],                         &[("a", "1", ""), ("b", "2", "")], 0),
    (&[b""],                                  &[], 0),
    (&[b",, ,"],                              &[], 0),
    (&[b"a=x%3Dy"],                           &[("a", "x=y", "")], 0),
    (&[b"a=b=c=d"],                           &[("a", "b=c=d", "")], 0),
    (&[b"a=1;p1;p2=v"],                       &[("a", "1", "p1;p2=v")], 0),
    (&[b"a=1 ; ttl = 5"],                     &[("a", "1", "ttl = 5")], 0),
    (&[b"a=%FF%FE"],                          &[("a", "\u{fffd}\u{fffd}", "")], 0),
    (&[b"user=J%C3%BCrgen%20M"],              &[("user", "J\u{fc}rgen M", "")], 0),
    // duplicate keys: the later one wins, also across lines
    (&[b"a=1,a=2"],                           &[("a", "2", "")], 0),
    (&[b"a=1;p,a=2"],                         &[("a", "2", "")], 0),
    (&[b"a=1", b"a=2;q"],                     &[("a", "2", "q")], 0),
    (&[b"a=1,b=2,a=3"],                       &[("a", "3", ""), ("b", "2", "")], 0),
    // an invalid member is dropped alone
    (&[b"a=1, bad member, b=2"],              &[("a", "1", ""), ("b", "2", "")], 1),
    (&[b"bad key=1,ok=2"],                    &[("ok", "2", "")], 1),
    (&[b"a=1,b=\"q\""],                       &[("a", "1", "")], 1),
    (&[b"=1,noeq,a=1,b=x y"],                 &[("a", "1", "")], 3),
    (&[b"a=1,a=bad value"],                   &[("a", "1", "")], 1),
    (&[b"bad", b"a=1"],                       &[("a", "1", "")], 1),
    // a member with a non-ASCII byte is invalid on its own; the others stay
    (&[b"a=1,b=caf\xc3\xa9"],                 &[("a", "1", "")], 1),
    (&[b"a=1,b=\xff,c=3"],                    &[("a", "1", ""), ("c", "3", "")], 1),
];

#[test]
fn parse_baggage_vectors() {
    let mut failures = Vec::new();
    for (i, (lines, members, dropped)) in HEADERS.iter().enumerate() {
        let want = (flat_of(members), *dropped);
        let parsed = parse_baggage(lines);
        let got = (flat(&parsed.baggage), parsed.dropped);
        if got != want {
            failures.push(format!(
                "[{i}] {}:\n    want {want:?}\n    got  {got:?}",
                show_lines(lines)
            ));
        }
    }
    report("HEADERS (parse_baggage)", failures);
}

#[test]
fn extract_baggage_vectors() {
    let p = MeshPropagator::istio();
    let mut failures = Vec::new();
    for (i, (lines, members, dropped)) in HEADERS.iter().enumerate() {
        let want_errors: Vec<String> = if *dropped > 0 {
            vec![format!("Baggage({dropped})")]
        } else {
            vec![]
        };
        let want = (flat_of(members), want_errors);
        let mut h = HeaderMap::new();
        for l in lines.iter() {
            h.append("baggage", HeaderValue::from_bytes(l).unwrap());
        }
        let cx = p.extract_from_headers(&h);
        let got = (flat(cx.baggage()), errors_of(&cx));
        if got != want {
            failures.push(format!(
                "[{i}] (HeaderMap) {}:\n    want {want:?}\n    got  {got:?}",
                show_lines(lines)
            ));
        }
        if let [line] = lines {
            if let Ok(s) = std::str::from_utf8(line) {
                let map = HashMap::from([("baggage".to_owned(), s.to_owned())]);
                let cx = p.extract(&map);
                let got = (flat(cx.baggage()), errors_of(&cx));
                if got != want {
                    failures.push(format!(
                        "[{i}] (HashMap) {}:\n    want {want:?}\n    got  {got:?}",
                        show_lines(lines)
                    ));
                }
            }
        }
    }
    report("HEADERS (extract)", failures);
}

// ---------------------------------------------------------------------------------------------
// Limits: 64 members, 8192 bytes, whole members only
// ---------------------------------------------------------------------------------------------

/// A limits vector, built at run time from a short description.
#[derive(Debug, Clone, Copy)]
enum Lim {
    /// `n` members `k{i}=v{i}` split over lines of `per_line`.
    Members { n: usize, per_line: usize },
    /// One line per given length: member `m{i}=vvv…` of exactly that many bytes.
    Sizes(&'static [usize]),
    /// 64 members, then key `k0` again with a new value.
    FullThenUpdate,
    /// One line of members `m{i}=vvv…` of these sizes, joined by commas.
    OneLine(&'static [usize]),
}

/// (input, members kept, dropped, truncated: reading stopped at a limit)
#[rustfmt::skip]
const LIMITS: &[(Lim, usize, usize, bool)] = &[
    (Lim::Members { n: 64, per_line: 64 },     64, 0, false),
    (Lim::Members { n: 65, per_line: 65 },     64, 0, true),
    (Lim::Members { n: 70, per_line: 70 },     64, 0, true),
    (Lim::Members { n: 64, per_line: 32 },     64, 0, false),
    (Lim::Members { n: 65, per_line: 13 },     64, 0, true),
    (Lim::FullThenUpdate,                      64, 0, false),
    (Lim::Sizes(&[8192]),                      1,  0, false),
    (Lim::Sizes(&[8193]),                      0,  0, true),
    (Lim::Sizes(&[4000, 4000]),                2,  0, false),
    // 4096 + the comma joining the lines + 4095 = 8192 exactly
    (Lim::Sizes(&[4096, 4095]),                2,  0, false),
    (Lim::Sizes(&[4096, 4096]),                1,  0, true),
    // reading stops at the limit: a member that would still fit after it is not read
    (Lim::Sizes(&[8000, 500, 100]),            1,  0, true),
    (Lim::Sizes(&[9000, 10]),                  0,  0, true),
    // the limit inside one line: at a comma, or inside a member
    (Lim::OneLine(&[8192, 3]),                 1,  0, true),
    (Lim::OneLine(&[8191, 3]),                 1,  0, true),
    (Lim::OneLine(&[8188, 3]),                 2,  0, false),
    (Lim::OneLine(&[100, 200, 300]),           3,  0, false),
    (Lim::OneLine(&[4000, 4000, 4000]),        2,  0, true),
    (Lim::OneLine(&[1 << 20]),                 0,  0, true),
];

fn sized_member(i: usize, len: usize) -> String {
    let key = format!("m{i}=");
    format!("{key}{}", "v".repeat(len - key.len()))
}

fn lim_lines(l: Lim) -> Vec<String> {
    match l {
        Lim::Members { n, per_line } => (0..n)
            .collect::<Vec<_>>()
            .chunks(per_line)
            .map(|c| {
                c.iter()
                    .map(|k| format!("k{k}=v{k}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect(),
        Lim::Sizes(sizes) => sizes
            .iter()
            .enumerate()
            .map(|(i, len)| sized_member(i, *len))
            .collect(),
        Lim::OneLine(sizes) => vec![sizes
            .iter()
            .enumerate()
            .map(|(i, len)| sized_member(i, *len))
            .collect::<Vec<_>>()
            .join(",")],
        Lim::FullThenUpdate => {
            let mut v = lim_lines(Lim::Members {
                n: 64,
                per_line: 64,
            });
            v.push("k0=new".to_owned());
            v
        }
    }
}

#[test]
fn limit_vectors() {
    let mut failures = Vec::new();
    for (i, (lim, kept, dropped, truncated)) in LIMITS.iter().enumerate() {
        let lines = lim_lines(*lim);
        let bytes: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
        let parsed = parse_baggage(&bytes);
        let (b, d, t) = (&parsed.baggage, parsed.dropped, parsed.truncated);
        if (b.len(), d, t) != (*kept, *dropped, *truncated) {
            failures.push(format!(
                "[{i}] {lim:?}: want (kept, dropped, truncated) = ({kept}, {dropped}, \
                 {truncated}), got ({}, {d}, {t})",
                b.len()
            ));
            continue;
        }
        // Members are kept whole or not at all; the first ones in the order received are kept.
        let whole: Vec<String> = lines
            .iter()
            .flat_map(|l| l.split(','))
            .map(str::to_owned)
            .collect();
        for (k, (v, _)) in b {
            let member = format!("{}={}", k.as_str(), v.as_str());
            let partial = !whole.contains(&member);
            let updated = matches!(lim, Lim::FullThenUpdate) && member == "k0=new";
            if partial && !updated {
                failures.push(format!("[{i}] {lim:?}: member {k} kept only in part"));
            }
        }
        if matches!(lim, Lim::FullThenUpdate)
            && b.get("k0").map(|v| v.as_str().to_owned()) != Some("new".to_owned())
        {
            failures.push(format!("[{i}] {lim:?}: later k0 must win"));
        }
        if let Lim::Members { n, .. } = lim {
            let want_keys: Vec<String> = (0..(*n).min(MAX_MEMBERS))
                .map(|k| format!("k{k}"))
                .collect();
            if want_keys.iter().any(|k| b.get(k.as_str()).is_none()) {
                failures.push(format!(
                    "[{i}] {lim:?}: the first 64 members must be the ones kept"
                ));
            }
        }
    }
    report("LIMITS", failures);
    assert_eq!((MAX_MEMBERS, MAX_BYTES), (64, 8192));
}

// ---------------------------------------------------------------------------------------------
// Inject: encode what needs encoding, extract(inject(b)) == b
// ---------------------------------------------------------------------------------------------

/// (key, value, properties) of a one-member baggage, and the expected header.
#[rustfmt::skip]
const ENCODE_ONE: &[((&str, &str, &str), &str)] = &[
    (("a", "1", ""),                "a=1"),
    (("a", "x y", ""),              "a=x%20y"),
    (("a", "100%", ""),             "a=100%25"),
    (("a", "a=b", ""),              "a=a=b"),
    (("a", "\u{20ac}", ""),         "a=%E2%82%AC"),
    (("a", ",;\"\\", ""),           "a=%2C%3B%22%5C"),
    (("a", "", ""),                 "a="),
    (("a", "line\nbreak", ""),      "a=line%0Abreak"),
    (("a", "tab\there", ""),        "a=tab%09here"),
    (("a", "\r\n\0", ""),           "a=%0D%0A%00"),
    (("a", "\u{fffd}", ""),         "a=%EF%BF%BD"),
    (("a", "%20", ""),              "a=%2520"),
    (("a", "1", "p=1;q"),           "a=1;p=1;q"),
    (("user-id", "J\u{fc}rgen M", "ttl=3"), "user-id=J%C3%BCrgen%20M;ttl=3"),
];

#[test]
fn encode_one_vectors() {
    let p = MeshPropagator::istio();
    let mut failures = Vec::new();
    for (i, ((k, v, m), want)) in ENCODE_ONE.iter().enumerate() {
        let mut b = Baggage::new();
        b.insert_with_metadata(k.to_string(), v.to_string(), *m);
        let got = encode_baggage(&b);
        if got.as_deref() != Some(*want) {
            failures.push(format!("[{i}] {:?}: want {want:?}, got {got:?}", (k, v, m)));
            continue;
        }
        // Through the propagator and back.
        let before = flat(&b);
        let cx = Context::new().with_baggage(b);
        let mut h = HeaderMap::new();
        p.inject_into_headers(&cx, &mut h);
        let back = p.extract_from_headers(&h);
        if flat(back.baggage()) != before {
            failures.push(format!(
                "[{i}] {:?}: extract(inject(b)) = {:?}",
                (k, v, m),
                flat(back.baggage())
            ));
        }
    }
    report("ENCODE_ONE", failures);
}

/// Multi-member baggages: extract(inject(b)) == b (member order is not part of baggage).
#[rustfmt::skip]
const ROUND_TRIP: &[&[(&str, &str, &str)]] = &[
    &[("a", "1", ""), ("b", "2", "")],
    &[("a", "x=y", ""), ("b", "a,b", "p"), ("c", "a;b", "p=1;q=2")],
    &[("k!#$&'*+-.^_`|~", "v", "")],
    &[("a", "\u{1f600} \u{e9}\u{fffd}", ""), ("B", "%%%", "")],
    &[("a", "\"quoted\" \\ back", ""), ("b", "", "")],
    &[("a", "\u{0}\u{1}\u{7f}", "x")],
];

#[test]
fn round_trip_vectors() {
    let p = MeshPropagator::istio();
    let mut failures = Vec::new();
    for (i, members) in ROUND_TRIP.iter().enumerate() {
        let mut b = Baggage::new();
        for (k, v, m) in members.iter() {
            b.insert_with_metadata(k.to_string(), v.to_string(), *m);
        }
        let want = flat_of(members);
        let cx = Context::new().with_baggage(b);

        let mut h = HeaderMap::new();
        p.inject_into_headers(&cx, &mut h);
        let got = flat(p.extract_from_headers(&h).baggage());
        if got != want {
            failures.push(format!(
                "[{i}] (HeaderMap) want {want:?}, got {got:?} via {h:?}"
            ));
        }

        let mut map: HashMap<String, String> = HashMap::new();
        p.inject_context(&cx, &mut map);
        let got = flat(p.extract(&map).baggage());
        if got != want {
            failures.push(format!(
                "[{i}] (HashMap) want {want:?}, got {got:?} via {map:?}"
            ));
        }
    }
    report("ROUND_TRIP", failures);
}

#[test]
fn round_trip_at_the_limits() {
    let p = MeshPropagator::istio();
    // 64 members, and one member of 8192 bytes: both must go out and come back whole.
    let many: Baggage = (0..64)
        .map(|k| opentelemetry::KeyValue::new(format!("k{k}"), format!("v{k}")))
        .collect();
    let big_value = "v".repeat(MAX_BYTES - 2);
    let mut big = Baggage::new();
    big.insert("k", big_value);
    for (i, b) in [many, big].into_iter().enumerate() {
        let before = flat(&b);
        let cx = Context::new().with_baggage(b);
        let mut h = HeaderMap::new();
        p.inject_into_headers(&cx, &mut h);
        let back = p.extract_from_headers(&h);
        assert_eq!(flat(back.baggage()), before, "limit round trip [{i}]");
    }
}

#[test]
fn empty_baggage_is_not_injected() {
    let p = MeshPropagator::istio();
    let mut h = HeaderMap::new();
    p.inject_into_headers(&Context::new(), &mut h);
    assert!(h.get("baggage").is_none());
    assert_eq!(encode_baggage(&Baggage::new()), None);
}

/// Baggage the application did not change goes out as it came: order, spacing and encoding
/// kept, through derived contexts too. Changed or partly invalid baggage is re-encoded.
#[test]
fn unchanged_baggage_is_forwarded_as_received() {
    let p = MeshPropagator::istio();
    let inject = |cx: &Context| {
        let mut out = HeaderMap::new();
        p.inject_into_headers(cx, &mut out);
        let mut generic = HashMap::new();
        p.inject_context(cx, &mut generic);
        let fast = out.get("baggage").map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(fast, generic.get("baggage").cloned(), "both paths agree");
        fast
    };
    let mut h = HeaderMap::new();
    h.append(
        "baggage",
        HeaderValue::from_static("zeta=1 , alpha=caf%C3%A9;ttl=30"),
    );
    h.append("baggage", HeaderValue::from_static("mid=x"));
    let cx = p.extract_from_headers(&h);
    let received = "zeta=1 , alpha=caf%C3%A9;ttl=30,mid=x";
    assert_eq!(inject(&cx).as_deref(), Some(received));
    // A context derived from it (a child span's, say) still carries the same baggage.
    assert_eq!(inject(&cx.with_value(7u8)).as_deref(), Some(received));

    // Replaced baggage, even with equal content, is encoded from what the context holds.
    let replaced = cx.with_baggage([opentelemetry::KeyValue::new("mid", "y")]);
    assert_eq!(inject(&replaced).as_deref(), Some("mid=y"));

    // An invalid member is never forwarded: the valid ones are re-encoded without it.
    let mut h = HeaderMap::new();
    h.insert("baggage", HeaderValue::from_static("a=1, bad member"));
    let cx = p.extract_from_headers(&h);
    assert_eq!(inject(&cx).as_deref(), Some("a=1"));
}
