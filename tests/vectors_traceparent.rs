//! Table tests for W3C `traceparent` / `tracestate` (SPECS.md section 1).

mod support;

use http::HeaderMap;
use meshtrace::propagation::traceparent::{
    parse_traceparent, parse_tracestate, TraceparentError as E, TracestateError as TsE,
    MAX_TRACESTATE_BYTES,
};
use meshtrace::MeshPropagator;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::Context;
use std::collections::HashMap;

use support::headers::bytes_map;
use support::propagation::errors_of;
use support::tables::{report, show_pairs};

const T: &str = "0af7651916cd43dd8448eb211c80319c";
const P: &str = "b7ad6b7169203331";
const TID: u128 = 0x0af7651916cd43dd8448eb211c80319c;
const PID: u64 = 0xb7ad6b7169203331;

/// `VV-<T>-<P>-FF` with the usual ids.
macro_rules! tp {
    ($v:literal, $f:literal) => {
        concat!(
            $v,
            "-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-",
            $f
        )
    };
}

// ---------------------------------------------------------------------------------------------
// parse_traceparent
// ---------------------------------------------------------------------------------------------

type TpOk = (u8, u128, u64, u8);

#[rustfmt::skip]
const PARSE_TRACEPARENT: &[(&str, Result<TpOk, E>)] = &[
    // version 00, exact length
    (tp!("00", "01"),                                   Ok((0, TID, PID, 0x01))),
    (tp!("00", "00"),                                   Ok((0, TID, PID, 0x00))),
    // random bit (Level 2) kept, unknown bits cleared
    (tp!("00", "02"),                                   Ok((0, TID, PID, 0x02))),
    (tp!("00", "03"),                                   Ok((0, TID, PID, 0x03))),
    (tp!("00", "ff"),                                   Ok((0, TID, PID, 0x03))),
    (tp!("00", "09"),                                   Ok((0, TID, PID, 0x01))),
    (tp!("00", "fc"),                                   Ok((0, TID, PID, 0x00))),
    (tp!("00", "80"),                                   Ok((0, TID, PID, 0x00))),
    // spaces and tabs around the whole value
    (concat!(" ", tp!("00", "01")),                     Ok((0, TID, PID, 0x01))),
    (concat!(tp!("00", "01"), "\t"),                    Ok((0, TID, PID, 0x01))),
    (concat!(" \t ", tp!("00", "01"), " \t\t "),        Ok((0, TID, PID, 0x01))),
    // future versions
    (tp!("01", "01"),                                   Ok((1, TID, PID, 0x01))),
    (tp!("cc", "01"),                                   Ok((0xcc, TID, PID, 0x01))),
    (tp!("fe", "09"),                                   Ok((0xfe, TID, PID, 0x01))),
    (tp!("01", "01-what-the-future-will-be-like"),      Ok((1, TID, PID, 0x01))),
    (tp!("cc", "01-"),                                  Ok((0xcc, TID, PID, 0x01))),
    (tp!("02", "ff-xyz"),                               Ok((2, TID, PID, 0x03))),
    (concat!(" ", tp!("01", "00-x"), " "),              Ok((1, TID, PID, 0x00))),
    // version ff is invalid
    (tp!("ff", "01"),                                   Err(E::InvalidVersion)),
    (tp!("ff", "01-extra"),                             Err(E::InvalidVersion)),
    // bad version field
    (tp!("0A", "01"),                                   Err(E::InvalidVersion)),
    (tp!("zz", "01"),                                   Err(E::InvalidVersion)),
    (tp!("+0", "01"),                                   Err(E::InvalidVersion)),
    // version 00 with anything after the flags
    (tp!("00", "01."),                                  Err(E::TrailingData)),
    (tp!("00", "01-"),                                  Err(E::TrailingData)),
    (tp!("00", "01-extra"),                             Err(E::TrailingData)),
    (tp!("00", "010"),                                  Err(E::TrailingData)),
    (tp!("00", "01 x"),                                 Err(E::TrailingData)),
    (tp!("00", "01,00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), Err(E::TrailingData)),
    // future version: flags followed by something other than end or '-'
    (tp!("01", "01."),                                  Err(E::TrailingData)),
    (tp!("01", "010"),                                  Err(E::TrailingData)),
    // shorter than 55
    ("",                                                Err(E::TooShort(0))),
    ("   \t",                                           Err(E::TooShort(0))),
    (tp!("00", "1"),                                    Err(E::TooShort(54))),
    (tp!("01", "1"),                                    Err(E::TooShort(54))),
    ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01", Err(E::TooShort(54))),
    ("0-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", Err(E::TooShort(54))),
    // uppercase / non-hex
    ("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01", Err(E::InvalidTraceId)),
    ("00-0af7651916cd43dd8448eb211c80319C-b7ad6b7169203331-01", Err(E::InvalidTraceId)),
    ("00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01", Err(E::InvalidTraceId)),
    ("00-0af7651916cd43dd8448eb211c80319c-B7AD6B7169203331-01", Err(E::InvalidParentId)),
    ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333z-01", Err(E::InvalidParentId)),
    (tp!("00", "0A"),                                   Err(E::InvalidFlags)),
    (tp!("00", "g1"),                                   Err(E::InvalidFlags)),
    // all-zero ids
    ("00-00000000000000000000000000000000-b7ad6b7169203331-01", Err(E::ZeroTraceId)),
    ("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", Err(E::ZeroParentId)),
    ("00-00000000000000000000000000000000-0000000000000000-01", Err(E::ZeroTraceId)),
    ("01-00000000000000000000000000000000-b7ad6b7169203331-01", Err(E::ZeroTraceId)),
    // separators
    ("00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", Err(E::Separator)),
    ("00-0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331-01", Err(E::Separator)),
    ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331_01", Err(E::Separator)),
    ("00 -0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", Err(E::Separator)),
];

#[test]
fn parse_traceparent_vectors() {
    let mut failures = Vec::new();
    for (i, (input, want)) in PARSE_TRACEPARENT.iter().enumerate() {
        let got = parse_traceparent(input.as_bytes())
            .map(|t| (t.version, t.trace_id, t.parent_id, t.flags));
        if got != *want {
            failures.push(format!("[{i}] {input:?}: want {want:?}, got {got:?}"));
        }
    }
    report("PARSE_TRACEPARENT", failures);
}

// ---------------------------------------------------------------------------------------------
// parse_tracestate
// ---------------------------------------------------------------------------------------------

#[rustfmt::skip]
const PARSE_TRACESTATE: &[(&[&str], Result<&str, TsE>)] = &[
    (&[],                                           Ok("")),
    (&[""],                                         Ok("")),
    (&[" , ,\t,"],                                  Ok("")),
    (&["congo=t61rcWkgMzE"],                        Ok("congo=t61rcWkgMzE")),
    (&["congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7"], Ok("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")),
    (&["a=1", "", "b=2", "c=3"],                    Ok("a=1,b=2,c=3")),
    (&[" a=1 ,\t b=2 \t"],                          Ok("a=1,b=2")),
    (&["a=1,,,b=2"],                                Ok("a=1,b=2")),
    (&[",a=1,"],                                    Ok("a=1")),
    (&["a=b c"],                                    Ok("a=b c")),
    (&["a= b"],                                     Ok("a= b")),
    (&["1a=x"],                                     Ok("1a=x")),
    (&["a*b/c-d_e=x"],                              Ok("a*b/c-d_e=x")),
    (&["a@b=x"],                                    Ok("a@b=x")),
    (&["t61rcwkgmze@congo=x"],                      Ok("t61rcwkgmze@congo=x")),
    // Level 2 keys are valid, but opentelemetry's `TraceState` (the type a SpanContext must
    // hold) still applies Level 1's multi-tenant rule (one `@`, vendor <= 13 chars): the
    // trace state holds the other members; the propagator forwards the whole list (see
    // LEVEL2_ROUND_TRIP below).
    (&["tenant@averyverylongvendorname=x"],         Ok("")),
    (&["a@b@c=x"],                                  Ok("")),
    (&["foo@=1,bar=2"],                             Ok("foo@=1,bar=2")), // an empty vendor it accepts
    (&["foo@@bar=1,bar=2"],                         Ok("bar=2")),
    (&["foo@bar@baz=1,bar=2"],                      Ok("bar=2")),
    (&["a=1", "b@c@d=2", "e=3"],                    Ok("a=1,e=3")),
    // duplicate keys: the first occurrence stays, later ones are dropped
    (&["a=1,a=2"],                                  Ok("a=1")),
    (&["a=1,a=1"],                                  Ok("a=1")),
    (&["a=1", "a=2"],                               Ok("a=1")),
    (&["a=1,b=2,a=3,b=4,c=5"],                      Ok("a=1,b=2,c=5")),
    (&["foo@@x=1,foo@@x=2,bar=3"],                  Ok("bar=3")),
    (&["a=!\"#$%&'()*+-./:;<>?@[\\]^_`{|}~"],       Ok("a=!\"#$%&'()*+-./:;<>?@[\\]^_`{|}~")),
    // invalid members discard the whole list
    (&["a=1,b"],                                    Err(TsE::MissingEquals)),
    (&["a=1", "b"],                                 Err(TsE::MissingEquals)),
    (&["A=1"],                                      Err(TsE::InvalidKey)),
    (&["a=1,Bb=2"],                                 Err(TsE::InvalidKey)),
    (&["_a=1"],                                     Err(TsE::InvalidKey)),
    (&["@a=1"],                                     Err(TsE::InvalidKey)),
    (&["=1"],                                       Err(TsE::InvalidKey)),
    (&["a b=1"],                                    Err(TsE::InvalidKey)),
    (&["a.b=1"],                                    Err(TsE::InvalidKey)),
    (&["a=b=c"],                                    Err(TsE::InvalidValue)),
    (&["a=b\tc"],                                   Err(TsE::InvalidValue)),
    // value is 0*255(chr) nblk-chr: at least one character (primary source, trace-context-2)
    (&["a="],                                       Err(TsE::InvalidValue)),
    (&["foo=,bar=3"],                               Err(TsE::InvalidValue)),
    (&["foo=bar=baz"],                              Err(TsE::InvalidValue)),
    (&["foo =1"],                                   Err(TsE::InvalidKey)),
    (&["FOO=1"],                                    Err(TsE::InvalidKey)),
    (&["foo.bar=1"],                                Err(TsE::InvalidKey)),
    (&["@foo=1,bar=2"],                             Err(TsE::InvalidKey)),
    // a duplicate does not excuse an invalid member after it
    (&["a=1,a=2,B=3"],                              Err(TsE::InvalidKey)),
];

#[test]
fn parse_tracestate_vectors() {
    let mut failures = Vec::new();
    for (i, (lines, want)) in PARSE_TRACESTATE.iter().enumerate() {
        let bytes: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
        let got = parse_tracestate(&bytes).map(|ts| ts.header());
        if got != want.map(String::from) {
            failures.push(format!("[{i}] {lines:?}: want {want:?}, got {got:?}"));
        }
    }
    report("PARSE_TRACESTATE", failures);
}

/// Limits that need generated input: (members per line, expected ok).
#[rustfmt::skip]
const TRACESTATE_LIMITS: &[(&[usize], bool)] = &[
    (&[32],         true),
    (&[33],         false),
    (&[16, 16],     true),
    (&[17, 16],     false),
    (&[1; 32],      true),
    (&[1; 33],      false),
];

fn members(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|k| format!("k{k}=v{k}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn tracestate_member_limit_vectors() {
    for (i, (per_line, ok)) in TRACESTATE_LIMITS.iter().enumerate() {
        let mut start = 0;
        let lines: Vec<String> = per_line
            .iter()
            .map(|n| {
                let l = members(start, *n);
                start += n;
                l
            })
            .collect();
        let bytes: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
        let got = parse_tracestate(&bytes);
        if *ok {
            assert_eq!(
                got.map(|t| t.header()),
                Ok(members(0, start)),
                "TRACESTATE_LIMITS[{i}]"
            );
        } else {
            assert_eq!(got, Err(TsE::TooManyMembers), "TRACESTATE_LIMITS[{i}]");
        }
    }
    // Empty members do not count towards the 32.
    let line = format!("{},,, ,{}", members(0, 16), members(16, 16));
    assert!(parse_tracestate(&[line.as_bytes()]).is_ok());
    // Key of 1 + 255 characters, value of 256: the longest allowed.
    let long_key = format!("a{}", "b".repeat(255));
    let long_val = "v".repeat(256);
    let ok = format!("{long_key}={long_val}");
    assert_eq!(
        parse_tracestate(&[ok.as_bytes()]).map(|t| t.header()),
        Ok(ok.clone())
    );
    let key_too_long = format!("a{}=v", "b".repeat(256));
    assert_eq!(
        parse_tracestate(&[key_too_long.as_bytes()]),
        Err(TsE::InvalidKey)
    );
    // Level 2 keys opentelemetry's `TraceState` cannot hold (a tenant of 241 characters with
    // a 14-character vendor, a 15-character vendor) are valid and left out of it; a tenant of
    // 242 characters with a short vendor it can hold.
    for (key, held) in [
        (format!("{}@{}", "t".repeat(241), "v".repeat(14)), false),
        (format!("t@{}", "v".repeat(15)), false),
        (format!("{}@v", "t".repeat(242)), true),
        ("z".repeat(256), true),
    ] {
        let line = format!("{key}=1");
        let want = if held {
            format!("foo=1,{line}")
        } else {
            "foo=1".to_owned()
        };
        assert_eq!(
            parse_tracestate(&[b"foo=1".as_slice(), line.as_bytes()]).map(|t| t.header()),
            Ok(want),
            "{key}"
        );
    }
    let val_too_long = format!("a={}", "v".repeat(257));
    assert_eq!(
        parse_tracestate(&[val_too_long.as_bytes()]),
        Err(TsE::InvalidValue)
    );
}

/// The byte limit, all lines joined with commas: (line lengths, expected ok). Each line is
/// one member `k{i}=v` (the first 32 lines) padded with empty members (`,`), so only the
/// size decides.
#[rustfmt::skip]
const TRACESTATE_BYTES: &[(&[usize], bool)] = &[
    (&[MAX_TRACESTATE_BYTES],           true),
    (&[MAX_TRACESTATE_BYTES + 1],       false),
    (&[2047, 2048],                     true),
    (&[2048, 2048],                     false),
    (&[1 << 20],                        false),
    (&[10; 372],                        true),
    (&[10; 373],                        false),
];

#[test]
fn tracestate_byte_limit_vectors() {
    assert_eq!(MAX_TRACESTATE_BYTES, 4096);
    for (i, (lengths, ok)) in TRACESTATE_BYTES.iter().enumerate() {
        let lines: Vec<String> = lengths
            .iter()
            .enumerate()
            .map(|(k, len)| {
                let m = if k < 32 {
                    format!("k{k}=v")
                } else {
                    String::new()
                };
                format!("{m}{}", ",".repeat(len - m.len()))
            })
            .collect();
        let bytes: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
        let got = parse_tracestate(&bytes);
        if *ok {
            assert!(got.is_ok(), "TRACESTATE_BYTES[{i}]: {got:?}");
        } else {
            assert_eq!(got, Err(TsE::TooLong), "TRACESTATE_BYTES[{i}]");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Extraction through MeshPropagator
// ---------------------------------------------------------------------------------------------

/// (headers, expected remote (trace, span, flags), expected tracestate header, expected errors)
type ExtractRow = (
    &'static [(&'static str, &'static [u8])],
    Option<(&'static str, &'static str, u8)>,
    &'static str,
    &'static [&'static str],
);

#[rustfmt::skip]
const EXTRACT: &[ExtractRow] = &[
    (&[("traceparent", tp!("00", "01").as_bytes())],
        Some((T, P, 0x01)), "", &[]),
    (&[("TraceParent", tp!("00", "01").as_bytes())],
        Some((T, P, 0x01)), "", &[]),
    (&[("traceparent", tp!("00", "00").as_bytes())],
        Some((T, P, 0x00)), "", &[]),
    (&[("traceparent", tp!("00", "02").as_bytes())],
        Some((T, P, 0x02)), "", &[]),
    (&[("traceparent", tp!("00", "ff").as_bytes())],
        Some((T, P, 0x03)), "", &[]),
    (&[("traceparent", tp!("cc", "01-future").as_bytes())],
        Some((T, P, 0x01)), "", &[]),
    (&[("traceparent", concat!("  ", tp!("00", "01"), "\t").as_bytes())],
        Some((T, P, 0x01)), "", &[]),
    // tracestate read when traceparent is valid
    (&[("traceparent", tp!("00", "01").as_bytes()), ("tracestate", b"congo=t61rcWkgMzE")],
        Some((T, P, 0x01)), "congo=t61rcWkgMzE", &[]),
    (&[("traceparent", tp!("00", "01").as_bytes()), ("TraceState", b"congo=t61rcWkgMzE")],
        Some((T, P, 0x01)), "congo=t61rcWkgMzE", &[]),
    (&[("traceparent", tp!("00", "01").as_bytes()), ("tracestate", b"a=1"), ("tracestate", b"b=2")],
        Some((T, P, 0x01)), "a=1,b=2", &[]),
    (&[("tracestate", b"a=1"), ("traceparent", tp!("00", "01").as_bytes()), ("tracestate", b""), ("tracestate", b" , b=2,")],
        Some((T, P, 0x01)), "a=1,b=2", &[]),
    (&[("traceparent", tp!("00", "01").as_bytes()), ("tracestate", b"")],
        Some((T, P, 0x01)), "", &[]),
    (&[("traceparent", tp!("00", "01").as_bytes()), ("tracestate", b" ,\t, ")],
        Some((T, P, 0x01)), "", &[]),
    // invalid tracestate: trace kept, tracestate discarded as a whole
    (&[("traceparent", tp!("00", "01").as_bytes()), ("tracestate", b"a=1,b")],
        Some((T, P, 0x01)), "", &["Tracestate(MissingEquals)"]),
    (&[("traceparent", tp!("00", "01").as_bytes()), ("tracestate", b"a=1"), ("tracestate", b"B=2")],
        Some((T, P, 0x01)), "", &["Tracestate(InvalidKey)"]),
    // duplicate keys: the list is kept, the later duplicates dropped
    (&[("traceparent", tp!("00", "01").as_bytes()), ("tracestate", b"a=1,a=2")],
        Some((T, P, 0x01)), "a=1", &[]),
    (&[("traceparent", tp!("00", "00").as_bytes()), ("tracestate", b"a=1"), ("tracestate", b"b=2,a=3")],
        Some((T, P, 0x00)), "a=1,b=2", &[]),
    // Level 2 keys: valid; the SpanContext holds what opentelemetry can represent
    (&[("traceparent", tp!("00", "01").as_bytes()), ("tracestate", b"foo@@bar=1,bar=2")],
        Some((T, P, 0x01)), "bar=2", &[]),
    (&[("traceparent", tp!("00", "02").as_bytes()), ("tracestate", b"a@b@c=1")],
        Some((T, P, 0x02)), "", &[]),
    (&[("traceparent", tp!("00", "01").as_bytes()), ("tracestate", b"a=x=y")],
        Some((T, P, 0x01)), "", &["Tracestate(InvalidValue)"]),
    // a non-ASCII byte makes the member invalid: the whole tracestate goes, not just the line
    (&[("traceparent", tp!("00", "01").as_bytes()), ("tracestate", b"a=1"), ("tracestate", b"b=caf\xc3\xa9")],
        Some((T, P, 0x01)), "", &["Tracestate(InvalidValue)"]),
    // invalid traceparent: nothing extracted, tracestate not read at all
    (&[("traceparent", tp!("00", "01-extra").as_bytes()), ("tracestate", b"a=1")],
        None, "", &["Traceparent(TrailingData)"]),
    (&[("traceparent", tp!("00", "01-extra").as_bytes()), ("tracestate", b"A=1,b")],
        None, "", &["Traceparent(TrailingData)"]),
    (&[("traceparent", tp!("ff", "01").as_bytes()), ("tracestate", b"a=1")],
        None, "", &["Traceparent(InvalidVersion)"]),
    (&[("traceparent", b"00-00000000000000000000000000000000-b7ad6b7169203331-01")],
        None, "", &["Traceparent(ZeroTraceId)"]),
    (&[("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01")],
        None, "", &["Traceparent(ZeroParentId)"]),
    (&[("traceparent", b"00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01")],
        None, "", &["Traceparent(InvalidTraceId)"]),
    (&[("traceparent", b"")],
        None, "", &["Traceparent(TooShort(0))"]),
    // tracestate alone is never read
    (&[("tracestate", b"a=1")],
        None, "", &[]),
    // duplicates: two lines or a comma list
    (&[("traceparent", tp!("00", "01").as_bytes()), ("traceparent", tp!("00", "01").as_bytes())],
        None, "", &["Traceparent(Duplicate)"]),
    (&[("traceparent", tp!("00", "01").as_bytes()), ("traceparent", b"00-80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-01")],
        None, "", &["Traceparent(Duplicate)"]),
    (&[("traceparent", concat!(tp!("00", "01"), ",", tp!("00", "01")).as_bytes())],
        None, "", &["Traceparent(Duplicate)"]),
    (&[("traceparent", concat!(tp!("00", "01"), ", ", tp!("00", "00")).as_bytes()), ("tracestate", b"a=1")],
        None, "", &["Traceparent(Duplicate)"]),
    (&[("traceparent", tp!("00", "01").as_bytes()), ("traceparent", b"")],
        None, "", &["Traceparent(Duplicate)"]),
    // extraction must see every line, whatever bytes the second one holds
    (&[("traceparent", tp!("00", "01").as_bytes()), ("traceparent", b"caf\xc3\xa9")],
        None, "", &["Traceparent(Duplicate)"]),
];

/// The observable result of one extraction: (remote (trace, span, flags), tracestate, errors).
type Seen = (Option<(String, String, u8)>, String, Vec<String>);

fn seen(cx: &Context) -> Seen {
    let sc = cx.span().span_context().clone();
    let remote = (sc.is_valid() && sc.is_remote()).then(|| {
        (
            format!("{:032x}", sc.trace_id()),
            format!("{:016x}", sc.span_id()),
            sc.trace_flags().to_u8(),
        )
    });
    (remote, sc.trace_state().header(), errors_of(cx))
}

fn expected(row: &ExtractRow) -> Seen {
    let (_, remote, ts, errors) = row;
    (
        remote.map(|(t, s, f)| (t.to_owned(), s.to_owned(), f)),
        ts.to_string(),
        errors.iter().map(|e| e.to_string()).collect(),
    )
}

#[test]
fn extract_vectors() {
    let p = MeshPropagator::istio();
    let mut failures = Vec::new();
    for (i, row) in EXTRACT.iter().enumerate() {
        let want = expected(row);
        let headers = bytes_map(row.0);
        let got = seen(&p.extract_from_headers(&headers));
        if got != want {
            failures.push(format!(
                "[{i}] (HeaderMap) {}:\n    want {want:?}\n    got  {got:?}",
                show_pairs(row.0)
            ));
        }

        // The generic path sees the same thing when each name comes once as text.
        let mut names: Vec<String> = row.0.iter().map(|(n, _)| n.to_ascii_lowercase()).collect();
        names.sort();
        names.dedup();
        let all_text = row
            .0
            .iter()
            .all(|(_, v)| std::str::from_utf8(v).is_ok_and(|s| s.is_ascii()));
        if names.len() == row.0.len() && all_text {
            let map: HashMap<String, String> = row
                .0
                .iter()
                .map(|(n, v)| {
                    (
                        n.to_ascii_lowercase(),
                        String::from_utf8(v.to_vec()).unwrap(),
                    )
                })
                .collect();
            let got = seen(&p.extract(&map));
            if got != want {
                failures.push(format!(
                    "[{i}] (HashMap) {}:\n    want {want:?}\n    got  {got:?}",
                    show_pairs(row.0)
                ));
            }
        }
    }
    report("EXTRACT", failures);
}

#[test]
fn extract_tracestate_limit_vectors() {
    let p = MeshPropagator::istio();
    // (members per tracestate line, kept)
    #[rustfmt::skip]
    let table: &[(&[usize], bool)] = &[
        (&[32],        true),
        (&[33],        false),
        (&[20, 12],    true),
        (&[20, 13],    false),
    ];
    for (i, (per_line, kept)) in table.iter().enumerate() {
        let mut h = HeaderMap::new();
        h.insert("traceparent", tp!("00", "01").parse().unwrap());
        let mut start = 0;
        for n in per_line.iter() {
            h.append("tracestate", members(start, *n).parse().unwrap());
            start += n;
        }
        let cx = p.extract_from_headers(&h);
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid(), "limit[{i}]: trace must be kept");
        if *kept {
            assert_eq!(sc.trace_state().header(), members(0, start), "limit[{i}]");
            assert!(errors_of(&cx).is_empty(), "limit[{i}]");
        } else {
            assert_eq!(sc.trace_state(), &TraceState::NONE, "limit[{i}]");
            assert_eq!(
                errors_of(&cx),
                vec!["Tracestate(TooManyMembers)"],
                "limit[{i}]"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Inject
// ---------------------------------------------------------------------------------------------

/// How the tracestate of the injected span context is made.
#[derive(Debug, Clone, Copy)]
enum Ts {
    None,
    Pairs(&'static [(&'static str, &'static str)]),
    /// One member inserted then deleted: an empty but non-`NONE` trace state.
    Emptied,
}

/// (flags, is_remote, random_trace_ids, tracestate, expected traceparent, expected tracestate)
type InjectRow = (u8, bool, bool, Ts, &'static str, Option<&'static str>);

#[rustfmt::skip]
const INJECT: &[InjectRow] = &[
    (0x01, true,  true,  Ts::None,                             tp!("00", "01"), None),
    (0x00, true,  true,  Ts::None,                             tp!("00", "00"), None),
    (0x02, true,  true,  Ts::None,                             tp!("00", "02"), None),
    (0x03, true,  true,  Ts::None,                             tp!("00", "03"), None),
    (0xff, true,  true,  Ts::None,                             tp!("00", "03"), None),
    (0x81, true,  true,  Ts::None,                             tp!("00", "01"), None),
    // this process started the trace (local context, random ids): random bit set
    (0x01, false, true,  Ts::None,                             tp!("00", "03"), None),
    (0x00, false, true,  Ts::None,                             tp!("00", "02"), None),
    (0x01, false, false, Ts::None,                             tp!("00", "01"), None),
    // tracestate
    (0x01, true,  true,  Ts::Pairs(&[("congo", "t61rcWkgMzE")]), tp!("00", "01"), Some("congo=t61rcWkgMzE")),
    (0x01, true,  true,  Ts::Pairs(&[("a", "1"), ("b", "2")]), tp!("00", "01"), Some("a=1,b=2")),
    (0x01, true,  true,  Ts::Emptied,                          tp!("00", "01"), None),
    // a trace state OpenTelemetry accepts but W3C does not is never sent
    (0x01, true,  true,  Ts::Pairs(&[("a", "b ")]),            tp!("00", "01"), None),
    (0x01, true,  true,  Ts::Pairs(&[("a", "x\ny")]),          tp!("00", "01"), None),
    (0x01, true,  true,  Ts::Pairs(&[("a", "")]),              tp!("00", "01"), None),
];

fn trace_state(ts: Ts) -> TraceState {
    match ts {
        Ts::None => TraceState::NONE,
        Ts::Pairs(p) => TraceState::from_key_value(p.iter().copied()).unwrap(),
        Ts::Emptied => TraceState::from_key_value([("a", "1")])
            .unwrap()
            .delete("a")
            .unwrap(),
    }
}

#[test]
fn inject_vectors() {
    let mut failures = Vec::new();
    for (i, (flags, remote, random, ts, want_tp, want_ts)) in INJECT.iter().enumerate() {
        let p = MeshPropagator::builder_istio()
            .random_trace_ids(*random)
            .build()
            .unwrap();
        let sc = SpanContext::new(
            TraceId::from(TID),
            SpanId::from(PID),
            TraceFlags::new(*flags),
            *remote,
            trace_state(*ts),
        );
        let cx = Context::new().with_remote_span_context(sc);
        let mut h = HeaderMap::new();
        p.inject_into_headers(&cx, &mut h);
        let got: Vec<Option<&str>> = ["traceparent", "tracestate"]
            .iter()
            .map(|n| h.get(*n).map(|v| v.to_str().unwrap()))
            .collect();
        let want = vec![Some(*want_tp), *want_ts];
        if got != want || h.get_all("traceparent").iter().count() != 1 {
            failures.push(format!("[{i}] (HeaderMap) flags {flags:#04x} remote {remote} {ts:?}: want {want:?}, got {got:?}"));
        }
        let mut map: HashMap<String, String> = HashMap::new();
        p.inject_context(&cx, &mut map);
        let got: Vec<Option<&str>> = ["traceparent", "tracestate"]
            .iter()
            .map(|n| map.get(*n).map(String::as_str))
            .collect();
        if got != want {
            failures.push(format!("[{i}] (HashMap) flags {flags:#04x} remote {remote} {ts:?}: want {want:?}, got {got:?}"));
        }
    }
    report("INJECT", failures);
}

/// Round trips: (incoming traceparent, incoming tracestate, outgoing traceparent, outgoing tracestate)
#[rustfmt::skip]
const ROUND_TRIP: &[(&str, &str, &str, Option<&str>)] = &[
    (tp!("00", "01"),          "",              tp!("00", "01"), None),
    (tp!("00", "02"),          "",              tp!("00", "02"), None),
    (tp!("00", "03"),          "a=1",           tp!("00", "03"), Some("a=1")),
    (tp!("00", "ff"),          "",              tp!("00", "03"), None),
    (tp!("01", "01"),          "a=1",           tp!("00", "01"), Some("a=1")),
    (tp!("cc", "03-extra"),    " ,a=1 , b=2,",  tp!("00", "03"), Some("a=1,b=2")),
    (tp!("fe", "00"),          "",              tp!("00", "00"), None),
    (tp!("00", "01"),          "a=1,A=2",       tp!("00", "01"), None),
    (tp!("00", "01"),          ",",             tp!("00", "01"), None),
];

#[test]
fn round_trip_vectors() {
    let p = MeshPropagator::istio();
    let mut failures = Vec::new();
    for (i, (tp_in, ts_in, tp_out, ts_out)) in ROUND_TRIP.iter().enumerate() {
        let mut h = HeaderMap::new();
        h.insert("traceparent", tp_in.parse().unwrap());
        h.insert("tracestate", ts_in.parse().unwrap());
        let cx = p.extract_from_headers(&h);
        let mut out = HeaderMap::new();
        p.inject_into_headers(&cx, &mut out);
        let got = (
            out.get("traceparent").map(|v| v.to_str().unwrap()),
            out.get("tracestate").map(|v| v.to_str().unwrap()),
        );
        if got != (Some(*tp_out), *ts_out) {
            failures.push(format!(
                "[{i}] {tp_in} / {ts_in:?}: want {:?}, got {got:?}",
                (tp_out, ts_out)
            ));
        }
    }
    report("ROUND_TRIP", failures);
}

// ---------------------------------------------------------------------------------------------
// W3C Level 2 through extract and inject: the cases of the W3C test harness at level 2
// (docs/propagation.md, "W3C test harness"), as our own vectors
// ---------------------------------------------------------------------------------------------

/// What goes out for one incoming request: (incoming `traceparent`, incoming `tracestate`
/// lines, outgoing `tracestate` when the application left the trace state alone).
type Level2Row = (&'static str, Vec<String>, Option<String>);

fn level2_rows() -> Vec<Level2Row> {
    let l = |lines: &[&str]| lines.iter().map(|l| l.to_string()).collect::<Vec<_>>();
    let o = |s: &str| Some(s.to_owned());
    let tenant_241 = format!("{}@{}", "t".repeat(241), "v".repeat(14));
    let tenant_242 = format!("{}@v", "t".repeat(242));
    let vendor_15 = format!("t@{}", "v".repeat(15));
    let key_256 = "z".repeat(256);
    let key_257 = "z".repeat(257);
    vec![
        // Level 2 keys: inherited, forwarded as received (lines combined, OWS and empty
        // members removed)
        (tp!("00", "00"), l(&["foo@=1,bar=2"]), o("foo@=1,bar=2")),
        (
            tp!("00", "00"),
            l(&["foo@@bar=1,bar=2"]),
            o("foo@@bar=1,bar=2"),
        ),
        (
            tp!("00", "00"),
            l(&["foo@bar@baz=1,bar=2"]),
            o("foo@bar@baz=1,bar=2"),
        ),
        (
            tp!("00", "01"),
            l(&[" a=1 ,, b@c@d=2\t", "", "e=3"]),
            o("a=1,b@c@d=2,e=3"),
        ),
        (
            tp!("00", "00"),
            l(&["foo=1", &format!("{tenant_241}=1")]),
            Some(format!("foo=1,{tenant_241}=1")),
        ),
        (
            tp!("00", "00"),
            l(&["foo=1", &format!("{tenant_242}=1")]),
            Some(format!("foo=1,{tenant_242}=1")),
        ),
        (
            tp!("00", "00"),
            l(&["foo=1", &format!("{vendor_15}=1")]),
            Some(format!("foo=1,{vendor_15}=1")),
        ),
        (
            tp!("00", "00"),
            l(&["foo=1", &format!("{key_256}=1")]),
            Some(format!("foo=1,{key_256}=1")),
        ),
        // duplicate keys: the list kept, the first occurrence stays
        (tp!("00", "00"), l(&["foo=1,foo=1"]), o("foo=1")),
        (tp!("00", "00"), l(&["foo=1,foo=2"]), o("foo=1")),
        (tp!("00", "00"), l(&["foo=1", "foo=1"]), o("foo=1")),
        (tp!("00", "00"), l(&["foo=1", "foo=2"]), o("foo=1")),
        (
            tp!("00", "00"),
            l(&["foo@=1,foo@=2,bar=3"]),
            o("foo@=1,bar=3"),
        ),
        // still invalid: the whole list discarded, the trace kept
        (tp!("00", "00"), l(&["@foo=1,bar=2"]), None),
        (
            tp!("00", "00"),
            l(&["foo=1", &format!("{key_257}=1")]),
            None,
        ),
        (tp!("00", "00"), l(&["foo=bar=baz"]), None),
        (tp!("00", "00"), l(&["foo=,bar=3"]), None),
        (tp!("00", "00"), l(&["foo =1"]), None),
        (tp!("00", "00"), l(&["FOO=1"]), None),
        (tp!("00", "00"), l(&["foo.bar=1"]), None),
        (tp!("00", "00"), l(&["foo@=1,bar=2,x"]), None),
    ]
}

fn level2_request(tp_in: &str, lines: &[String]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("traceparent", tp_in.parse().unwrap());
    for line in lines {
        h.append("tracestate", line.parse().unwrap());
    }
    h
}

/// A span this process made under `cx`'s remote parent, as the SDK makes it: a new span id,
/// the parent's trace state, and the flags the SDK gives it (none when not sampled).
fn child_of(cx: &Context, flags: u8) -> Context {
    let parent = cx.span().span_context().clone();
    cx.with_remote_span_context(SpanContext::new(
        parent.trace_id(),
        SpanId::from(0x1111_2222_3333_4444),
        TraceFlags::new(flags),
        false,
        parent.trace_state().clone(),
    ))
}

#[test]
fn level2_tracestate_vectors() {
    let p = MeshPropagator::istio();
    let mut failures = Vec::new();
    for (i, (tp_in, lines, want)) in level2_rows().iter().enumerate() {
        let cx = p.extract_from_headers(&level2_request(tp_in, lines));
        if !cx.span().span_context().is_valid() {
            failures.push(format!("[{i}] {lines:?}: the trace was not kept"));
        }
        // The extracted context itself, and an SDK-like child span of it.
        for (what, cx) in [("extracted", cx.clone()), ("child", child_of(&cx, 0))] {
            let mut out = HeaderMap::new();
            p.inject_into_headers(&cx, &mut out);
            let got = out
                .get("tracestate")
                .map(|v| v.to_str().unwrap().to_owned());
            if got != *want || out.get_all("tracestate").iter().count() > 1 {
                failures.push(format!(
                    "[{i}] ({what}, HeaderMap) {lines:?}: want {want:?}, got {got:?}"
                ));
            }
            let mut map: HashMap<String, String> = HashMap::new();
            p.inject_context(&cx, &mut map);
            if map.get("tracestate") != want.as_ref() {
                failures.push(format!(
                    "[{i}] ({what}, HashMap) {lines:?}: want {want:?}, got {:?}",
                    map.get("tracestate")
                ));
            }
        }
        // The generic extract path keeps the whole list too (one line per name there).
        if lines.len() == 1 {
            let map = HashMap::from([
                ("traceparent".to_owned(), tp_in.to_string()),
                ("tracestate".to_owned(), lines[0].clone()),
            ]);
            let mut out = HeaderMap::new();
            p.inject_into_headers(&p.extract(&map), &mut out);
            let got = out
                .get("tracestate")
                .map(|v| v.to_str().unwrap().to_owned());
            if got != *want {
                failures.push(format!(
                    "[{i}] (generic extract) {lines:?}: want {want:?}, got {got:?}"
                ));
            }
        }
    }
    report("LEVEL2_TRACESTATE", failures);
}

/// A trace state the application changed goes out as the span context holds it: the
/// Level 2 members opentelemetry could not hold are not in it.
#[test]
fn level2_tracestate_changed_by_the_application_goes_out_as_held() {
    let p = MeshPropagator::istio();
    let cx = p.extract_from_headers(&level2_request(tp!("00", "01"), &["foo@@x=1,bar=2".into()]));
    let sc = cx.span().span_context().clone();
    assert_eq!(sc.trace_state().header(), "bar=2");
    let changed = cx.with_remote_span_context(SpanContext::new(
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags(),
        true,
        sc.trace_state().insert("mine", "x").unwrap(),
    ));
    let mut out = HeaderMap::new();
    p.inject_into_headers(&changed, &mut out);
    assert_eq!(out["tracestate"], "mine=x,bar=2");
    // A span of another trace under the same request does not get the received list.
    let other = cx.with_remote_span_context(SpanContext::new(
        TraceId::from(0x1234_u128),
        SpanId::from(0x5678_u64),
        TraceFlags::SAMPLED,
        false,
        sc.trace_state().clone(),
    ));
    let mut out = HeaderMap::new();
    p.inject_into_headers(&other, &mut out);
    assert_eq!(out["tracestate"], "bar=2");
}

/// (incoming flags, flags of the local child span, outgoing flags)
#[rustfmt::skip]
const RANDOM_FLAG: &[(&str, u8, &str)] = &[
    // the received random flag goes out on every call of the trace, sampled or not,
    // whatever flags the SDK gave the child span
    ("02", 0x00, "02"),
    ("03", 0x01, "03"),
    ("03", 0x00, "02"),
    ("02", 0x01, "03"),
    // no random flag received: none added (this process did not make the trace id)
    ("00", 0x00, "00"),
    ("01", 0x01, "01"),
    ("01", 0x00, "00"),
];

#[test]
fn random_flag_vectors() {
    let p = MeshPropagator::istio();
    let mut failures = Vec::new();
    for (i, (flags_in, child_flags, flags_out)) in RANDOM_FLAG.iter().enumerate() {
        let value = format!("00-{T}-{P}-{flags_in}");
        let mut h = HeaderMap::new();
        h.insert("traceparent", value.parse().unwrap());
        let cx = child_of(&p.extract_from_headers(&h), *child_flags);
        let want = format!("00-{T}-1111222233334444-{flags_out}");
        let mut out = HeaderMap::new();
        p.inject_into_headers(&cx, &mut out);
        let mut map: HashMap<String, String> = HashMap::new();
        p.inject_context(&cx, &mut map);
        for (path, got) in [
            (
                "HeaderMap",
                out.get("traceparent").map(|v| v.to_str().unwrap()),
            ),
            ("HashMap", map.get("traceparent").map(String::as_str)),
        ] {
            if got != Some(want.as_str()) {
                failures.push(format!("[{i}] ({path}) in -{flags_in}, child {child_flags:#04x}: want {want}, got {got:?}"));
            }
        }
    }
    report("RANDOM_FLAG", failures);
}

#[test]
fn invalid_span_context_injects_no_traceparent() {
    let p = MeshPropagator::istio();
    let cx = Context::new().with_remote_span_context(SpanContext::empty_context());
    let mut h = HeaderMap::new();
    p.inject_into_headers(&cx, &mut h);
    assert!(h.get("traceparent").is_none());
    assert!(h.get("tracestate").is_none());
}
