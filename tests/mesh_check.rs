//! The mesh checker on sample Istio files: every problem planted in
//! `tests/fixtures/istio/problems/` is found (rule, resource and field), nothing in the clean
//! set is, the report is snapshot-tested, malformed input is an error naming file and line,
//! and the `mesh-check` binary prints the same report with the documented exit status.
//! Also the numbers [`RetryPolicy`] gives for the cases the checker reports.
#![cfg(feature = "check")]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use meshtrace::check::retry::{MeshRetries, RetryOn, RetryPolicy};
use meshtrace::check::{check_files, CheckError, Checker, Kind, Report, Rule};

use meshtrace::check::cli;

const PROBLEMS: [&str; 3] = [
    "tests/fixtures/istio/problems/routes.yaml",
    "tests/fixtures/istio/problems/destination-rules.yaml",
    "tests/fixtures/istio/problems/client.toml",
];
const CLEAN: [&str; 3] = [
    "tests/fixtures/istio/clean/bookinfo.yaml",
    "tests/fixtures/istio/clean/shop.yaml",
    "tests/fixtures/istio/clean/client.toml",
];

fn report(files: &[&str]) -> Report {
    check_files(files).unwrap_or_else(|e| panic!("{e}"))
}

/// (rule, kind, namespace/name, field, client call) of each finding.
type Key = (Rule, Kind, String, String, Option<String>);

fn keys(report: &Report) -> Vec<Key> {
    let mut keys: Vec<Key> = report
        .findings
        .iter()
        .map(|f| {
            (
                f.rule,
                f.resource.kind,
                format!("{}/{}", f.resource.namespace, f.resource.name),
                f.field.clone(),
                f.client.as_ref().map(|c| c.field.clone()),
            )
        })
        .collect();
    keys.sort();
    keys
}

#[rustfmt::skip]
#[test]
fn every_planted_problem_is_found_and_nothing_else() {
    use Kind::*;
    use Rule::*;
    let vs = VirtualService;
    let expected: Vec<(Rule, Kind, &str, &str, Option<&str>)> = vec![
        (StackedRetries, vs, "bookinfo/reviews", "spec.http[0].retries.attempts", Some("calls.reviews.retries")),
        (PerTryTimeoutOverrun, vs, "bookinfo/reviews", "spec.http[0].retries.perTryTimeout", None),
        (RetryNonIdempotent, vs, "bookinfo/ratings", "spec.http[0].retries.retryOn", None),
        (CodeTimeoutNotAboveMesh, vs, "bookinfo/ratings", "spec.http[1].timeout", Some("calls.ratings.timeout")),
        // `retries` unset: Istio's default 2 retries.
        (StackedRetries, vs, "bookinfo/details", "spec.http[0].retries.attempts", Some("calls.details.retries")),
        (RetryNonIdempotent, vs, "shop/checkout", "spec.http[0].retries.retryOn", Some("calls.checkout.method")),
        // No VirtualService for payments.billing: Istio's default retries, 503 included.
        (RetryNonIdempotent, ClientCall, "bookinfo/payments", "calls.payments.method", None),
        // Bound to a gateway only: still checked on its own.
        (PerTryTimeoutOverrun, vs, "bookinfo/productpage-gateway", "spec.http[0].retries.perTryTimeout", None),
        (OutlierEjectsAllHosts, DestinationRule, "bookinfo/reviews", "spec.trafficPolicy.outlierDetection.maxEjectionPercent", None),
        (OutlierEjectsAllHosts, DestinationRule, "bookinfo/ratings", "spec.subsets[1].trafficPolicy.outlierDetection.maxEjectionPercent", None),
    ];
    let mut expected: Vec<Key> = expected
        .into_iter()
        .map(|(r, k, n, f, c)| (r, k, n.to_owned(), f.to_owned(), c.map(str::to_owned)))
        .collect();
    expected.sort();

    let report = report(&PROBLEMS);
    assert_eq!(keys(&report), expected, "\n{report}");
    for rule in Rule::ALL {
        assert!(report.findings.iter().any(|f| f.rule == rule), "no {rule} finding planted");
    }
}

#[test]
fn findings_carry_the_numbers_and_the_lines() {
    let report = report(&PROBLEMS);
    let find = |rule: Rule, name: &str| {
        report
            .findings
            .iter()
            .find(|f| f.rule == rule && f.resource.name == name)
            .unwrap_or_else(|| panic!("no {rule} for {name}"))
    };

    let stacked = find(Rule::StackedRetries, "reviews");
    assert_eq!(
        stacked.location.to_string(),
        "tests/fixtures/istio/problems/routes.yaml:26"
    );
    assert!(
        stacked.message.contains("up to 12 requests"),
        "{}",
        stacked.message
    );
    let client = stacked.client.as_ref().unwrap();
    assert_eq!(
        client.location.to_string(),
        "tests/fixtures/istio/problems/client.toml:12"
    );

    let overrun = find(Rule::PerTryTimeoutOverrun, "reviews");
    assert!(
        overrun.message.contains("only 3 of the 4 tries start"),
        "{}",
        overrun.message
    );

    let outlier = find(Rule::OutlierEjectsAllHosts, "reviews");
    assert_eq!(outlier.location.line, 17);
    assert!(
        outlier.message.contains("after 1 consecutive 5xx"),
        "{}",
        outlier.message
    );
}

#[test]
fn clean_set_has_no_findings() {
    let report = report(&CLEAN);
    assert!(report.is_clean(), "\n{report}");
    // It did read everything: a clean result from skipped input would prove nothing.
    let c = report.checked;
    assert_eq!(
        (
            c.files,
            c.virtual_services,
            c.destination_rules,
            c.client_calls
        ),
        (3, 5, 3, 6)
    );
}

#[test]
fn problems_report_snapshot() {
    insta::assert_snapshot!("problems_report", report(&PROBLEMS).to_string());
}

#[test]
fn report_order_does_not_depend_on_input_order() {
    let mut reversed = PROBLEMS;
    reversed.reverse();
    assert_eq!(report(&reversed).to_string(), report(&PROBLEMS).to_string());
}

#[test]
fn malformed_yaml_is_an_error_naming_file_and_line() {
    let broken = "tests/fixtures/istio/malformed/broken.yaml";
    let err = check_files([broken]).unwrap_err();
    assert!(matches!(err, CheckError::Yaml { line: 22, .. }), "{err:?}");
    assert_eq!(err.file(), Path::new(broken));
    assert_eq!(
        err.to_string(),
        "tests/fixtures/istio/malformed/broken.yaml:22:6: malformed YAML: \
         while parsing a block mapping, did not find expected key"
    );

    // Good files before a bad one change nothing: the whole check fails.
    let mut files = PROBLEMS.to_vec();
    files.push(broken);
    assert_eq!(check_files(&files).unwrap_err().line(), Some(22));
}

#[test]
fn wrong_field_types_and_bad_settings_name_file_and_line() {
    let err = check_files(["tests/fixtures/istio/malformed/bad-attempts.yaml"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tests/fixtures/istio/malformed/bad-attempts.yaml:16: VirtualService bookinfo/reviews: \
         spec.http[0].retries.attempts: expected an integer, found a string"
    );
    let err = check_files(["tests/fixtures/istio/malformed/bad-settings.toml"]).unwrap_err();
    assert!(
        matches!(err, CheckError::Settings { line: 6, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("calls.reviews.timeout: `2 seconds` is not a duration"),
        "{err}"
    );

    let err = check_files(["README.md"]).unwrap_err();
    assert!(matches!(err, CheckError::UnknownFileType { .. }), "{err:?}");
    let err = check_files(["tests/fixtures/istio/no-such-file.yaml"]).unwrap_err();
    assert!(matches!(err, CheckError::Read { .. }), "{err:?}");
}

/// Odd but well-formed documents are skipped or rejected with an error, never a panic.
#[rustfmt::skip]
#[test]
fn odd_documents_never_panic() {
    let cases: &[(&str, Option<usize>)] = &[
        ("", None),
        ("---\n---\n", None),
        ("just a string\n", None),
        ("- a\n- b\n", None),
        ("kind: VirtualService\nspec: {}\n", None), // no apiVersion: not Istio's
        ("apiVersion: networking.istio.io/v1\nkind: Gateway\nspec: 3\n", None),
        ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\n", Some(1)),
        ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec: {http: 5}\n", Some(4)),
        ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: 7}\nspec: {}\n", Some(3)),
        ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec:\n  http:\n  - retries: {attempts: -1}\n", Some(6)),
        ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec:\n  http:\n  - retries: {retryOn: 5xxx}\n", Some(6)),
        ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec:\n  http:\n  - timeout: 5\n", Some(6)),
        ("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: x}\nspec: {trafficPolicy: {outlierDetection: {maxEjectionPercent: lots}}}\n", Some(4)),
        ("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: x}\nspec: {}\n", Some(4)),
        ("a: &x [*x]\n", None),
    ];
    for (text, error_line) in cases {
        let mut checker = Checker::new();
        let result = checker.add_istio_yaml("odd.yaml", text);
        match error_line {
            None => assert!(result.is_ok() || matches!(result, Err(CheckError::Yaml { .. })), "{text:?}: {result:?}"),
            Some(line) => assert_eq!(result.as_ref().err().and_then(CheckError::line), Some(*line), "{text:?}: {result:?}"),
        }
        let _ = checker.check();
    }
    let settings = ["retries = 1", "[calls.x]\nretries = -1", "[calls.x]\nbogus = 1", "[calls.x]\nbackoff = { initial = \"1s\", max = \"1ms\" }"];
    for text in settings {
        let err = Checker::new().add_client_settings("odd.toml", text).unwrap_err();
        assert!(err.line().is_some(), "{text:?}: {err}");
    }
}

/// Method matches: exact, a prefix of POST or PATCH, and a regex naming one select
/// non-idempotent requests; GET-only routes and safe retry conditions are left alone.
#[test]
fn method_matches_that_select_post_or_patch() {
    let route = |method: &str, retry_on: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: m, namespace: ns}}\n\
             spec:\n  hosts: [m]\n  http:\n  - match:\n    - method: {{{method}}}\n    route:\n    - destination: {{host: m}}\n    \
             retries: {{attempts: 2, retryOn: \"{retry_on}\"}}\n"
        )
    };
    let flagged = |yaml: String| {
        let mut checker = Checker::new();
        checker.add_istio_yaml("m.yaml", &yaml).unwrap();
        checker
            .check()
            .findings
            .iter()
            .any(|f| f.rule == Rule::RetryNonIdempotent)
    };
    assert!(flagged(route("exact: PATCH", "reset")));
    assert!(flagged(route("prefix: P", "503")));
    assert!(flagged(route("regex: \"POST|PUT\"", "gateway-error")));
    assert!(!flagged(route("exact: GET", "5xx")));
    assert!(!flagged(route(
        "exact: POST",
        "connect-failure,refused-stream,reset-before-request"
    )));
}

/// A call's host is found the way its pod resolves it, and an unknown external host is not
/// given Istio's in-mesh default.
#[test]
fn hosts_resolve_like_the_pod_and_istio() {
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r, namespace: prod}\n\
              spec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n";
    for (app_namespace, host, stacked) in [
        ("prod", "reviews", true),
        ("other", "reviews", false), // reviews.other: no VirtualService, no such service here
        ("other", "reviews.prod", true),
        ("other", "reviews.prod.svc.cluster.local", true),
        ("other", "api.example.com", false),
    ] {
        let mut checker = Checker::new();
        checker.add_istio_yaml("vs.yaml", vs).unwrap();
        let settings =
            format!("namespace = \"{app_namespace}\"\n[calls.c]\nhost = \"{host}\"\nretries = 1\n");
        checker.add_client_settings("c.toml", &settings).unwrap();
        let found: Vec<_> = checker
            .check()
            .findings
            .into_iter()
            .filter(|f| f.rule == Rule::StackedRetries)
            .collect();
        let via_vs = found
            .iter()
            .any(|f| f.resource.kind == Kind::VirtualService);
        assert_eq!(via_vs, stacked, "{app_namespace} {host}: {found:?}");
    }
}

/// `kubectl get … -o yaml` prints a `List`; its items are read like documents.
#[test]
fn kubectl_lists_are_read() {
    let list = "apiVersion: v1\nkind: List\nitems:\n\
                - apiVersion: networking.istio.io/v1\n  kind: DestinationRule\n  metadata: {name: r, namespace: ns}\n  \
                spec: {host: r, trafficPolicy: {outlierDetection: {maxEjectionPercent: 100}}}\n";
    let mut checker = Checker::new();
    checker.add_istio_yaml("list.yaml", list).unwrap();
    let report = checker.check();
    assert_eq!(report.checked.destination_rules, 1);
    let finding = &report.findings[0];
    assert_eq!(
        (finding.rule, finding.location.line),
        (Rule::OutlierEjectsAllHosts, 7)
    );
    assert!(
        finding
            .message
            .contains("after 5 consecutive 5xx (the default)"),
        "{}",
        finding.message
    );
}

#[test]
fn retry_policy_numbers() {
    let s = Duration::from_secs;
    // The write-up's case: 3 attempts in code, 3 tries in the mesh.
    let code = RetryPolicy::new().with_retries(2);
    let mesh = MeshRetries::istio_default().with_route_timeout(s(5));
    assert_eq!(code.worst_case_attempts(&mesh), 9);
    assert_eq!(code.worst_case_latency(&mesh), Some(s(15)));
    let a = code.amplification(&mesh).unwrap();
    assert_eq!((a.code_attempts, a.mesh_tries, a.requests), (3, 3, 9));

    // Retrying in one place does not amplify.
    assert!(RetryPolicy::new().amplification(&mesh).is_none());
    assert!(code.amplification(&MeshRetries::disabled()).is_none());

    // The code's timeout against the mesh's: the write-up's 6 s above Istio's 5 s is fine.
    assert!(RetryPolicy::new()
        .with_per_attempt_timeout(s(6))
        .timeout_conflict(&mesh)
        .is_none());
    let short = RetryPolicy::new()
        .with_per_attempt_timeout(s(4))
        .timeout_conflict(&mesh)
        .unwrap();
    assert_eq!((short.code, short.mesh_budget), (s(4), s(5)));

    // Per-try timeouts beyond the route timeout.
    let overrun = MeshRetries::new(3)
        .with_per_try_timeout(s(2))
        .with_route_timeout(s(5))
        .with_retry_on("gateway-error".parse::<RetryOn>().unwrap())
        .per_try_overrun()
        .unwrap();
    assert_eq!(
        (overrun.tries, overrun.tries_that_can_start, overrun.total),
        (4, 3, s(8))
    );
}

/// The command line, in-process: the same report on standard output, the documented exit status.
#[test]
fn cli_prints_the_report_and_exits_by_the_result() {
    let run = |files: &[&str]| {
        let args: Vec<String> = files.iter().map(|f| f.to_string()).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let status = cli::run(&args, &mut out, &mut err);
        (
            status,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    };
    let (status, out, err) = run(&PROBLEMS);
    assert_eq!((status, err.as_str()), (1, ""));
    assert_eq!(out, format!("{}\n", report(&PROBLEMS)));

    let (status, out, _) = run(&CLEAN);
    assert_eq!(status, 0);
    assert!(out.starts_with("0 findings in 3 files"), "{out}");

    let (status, out, err) = run(&["tests/fixtures/istio/malformed/broken.yaml"]);
    assert_eq!((status, out.as_str()), (2, ""));
    assert!(
        err.starts_with(
            "mesh-check: tests/fixtures/istio/malformed/broken.yaml:22:6: malformed YAML"
        ),
        "{err}"
    );

    assert_eq!(run(&[]).0, 2);
}

#[test]
fn binary_prints_the_report_and_exits_1() {
    let bin = env!("CARGO_BIN_EXE_mesh-check");
    let output = Command::new(bin)
        .args(PROBLEMS)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run mesh-check");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{}\n", report(&PROBLEMS))
    );

    let output = Command::new(bin)
        .args(["tests/fixtures/istio/malformed/bad-attempts.yaml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run mesh-check");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("bad-attempts.yaml:16:"));
}
