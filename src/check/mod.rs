//! A checker for retries and timeouts that fight the mesh (feature `check`).
//!
//! It reads Istio `VirtualService` and `DestinationRule` YAML (any number of documents per
//! file; other kinds are skipped) and, optionally, a small TOML file describing what the
//! application's own code does on each upstream call, and reports every [`Finding`] with the
//! rule, the resource, the field path and the file and line. The command-line front end is
//! `mesh-check FILES…` (`cargo install meshtrace --features check`; from a clone,
//! `cargo run --features check --bin mesh-check -- FILES…`).
//!
//! ```
//! use meshtrace::check::{Checker, Rule};
//!
//! let mut checker = Checker::new();
//! checker.add_istio_yaml("reviews.yaml", r#"
//! apiVersion: networking.istio.io/v1
//! kind: VirtualService
//! metadata: {name: reviews, namespace: bookinfo}
//! spec:
//!   hosts: [reviews]
//!   http:
//!   - route:
//!     - destination: {host: reviews}
//!     timeout: 5s
//!     retries: {attempts: 3, perTryTimeout: 2s}
//! "#)?;
//! checker.add_client_settings("client.toml", r#"
//! namespace = "bookinfo"
//! [calls.reviews]
//! retries = 2
//! timeout = "6s"
//! "#)?;
//!
//! let report = checker.check();
//! let rules: Vec<Rule> = report.findings.iter().map(|f| f.rule).collect();
//! assert_eq!(rules, [Rule::StackedRetries, Rule::PerTryTimeoutOverrun]);
//! assert_eq!(report.findings[0].field, "spec.http[0].retries.attempts");
//! assert_eq!(report.findings[0].location.to_string(), "reviews.yaml:11");
//! # Ok::<(), meshtrace::check::CheckError>(())
//! ```
//!
//! # Inputs
//!
//! [`Checker::add_file`] tells the two kinds apart by extension: `.toml` is a client-settings
//! file, `.yaml` and `.yml` are Istio resources, anything else is an error. Resources are
//! read as Istio reads them:
//!
//! - `VirtualService` and `DestinationRule` of any `networking.istio.io` version, also as the
//!   items of a `kind: List` (what `kubectl get virtualservices -o yaml` prints);
//! - short hosts (no dot) are services in the resource's own namespace: `reviews` in
//!   namespace `bookinfo` is `reviews.bookinfo.svc.cluster.local` (Istio's
//!   `ResolveShortnameToFQDN`); a missing `metadata.namespace` is `default`;
//! - a `VirtualService` applies to sidecars when `spec.gateways` is unset or names `mesh`;
//!   one bound only to gateways is still checked on its own, but no app call goes through it;
//! - unset fields take Istio's defaults, listed with each rule below and in [`crate::check::retry`].
//!
//! # The client-settings file
//!
//! One TOML file per application; every field is optional except the call tables themselves.
//! A complete example is `tests/fixtures/istio/clean/client.toml` in the repository.
//!
//! ```toml
//! # The namespace the application runs in; short hosts below resolve there, as the
//! # pod's DNS search list does. Default: "default".
//! namespace = "bookinfo"
//!
//! # One table per upstream the code calls; the key names the call in reports.
//! [calls.reviews]
//! host = "reviews"      # default: the key; `reviews`, `reviews.bookinfo` or the FQDN
//! method = "GET"        # POST, PATCH and CONNECT mark the call non-idempotent
//! path = "/reviews/1"   # picks the VirtualService route(s), as Envoy matches uri
//! idempotent = true     # overrides what the method says
//! retries = 0           # retries in code after the first attempt (default 0)
//! timeout = "6s"        # timeout of each request the code sends (default: none)
//! deadline = "10s"      # budget for the whole call, retries included (default: none)
//! backoff = { initial = "100ms", max = "1s", multiplier = 2.0 }
//!                       # delays between retries; max defaults to 10 × initial,
//!                       # multiplier to 2
//! ```
//!
//! A call's host is looked up the way its pod resolves it: the search list
//! (`<namespace>.svc.cluster.local`, `svc.cluster.local`, `cluster.local`) first, then the name
//! as written; the first name some `VirtualService` host matches picks it (an exact host over
//! a wildcard). Its routes are tried in order up to the first that surely matches the call's
//! `method` and `path`; a route whose match depends on something the settings do not
//! describe (headers, a regex, ports) may or may not apply, so it is checked too. A call to
//! an in-cluster service (`name`, `name.namespace`, `….svc`, `….svc.cluster.local`) that no
//! `VirtualService` routes gets Istio's default retry policy; a call to another host without
//! one is not checked, as whether the sidecar retries it depends on a `ServiceEntry` and the
//! protocol, which the inputs do not show.
//!
//! # The rules
//!
//! Every rule is precise about what it flags; none guesses at replica counts or load.
//!
//! ## `stacked-retries`
//!
//! The code retries (`retries > 0`) a host whose route in the mesh retries too (explicit
//! `retries.attempts > 0`, or `retries` unset, which is Istio's default of 2 retries). Each
//! layer multiplies the other: the upstream can see `(1 + code retries) × (1 + mesh retries)`
//! requests for one call (3 × 3 = 9 in the issue that motivated this crate), and the caller
//! waits up to that many timeouts. Reported on the route's `retries.attempts`, with the
//! product and the worst-case latency from [`crate::check::retry::RetryPolicy`]. Fix: retry in one
//! place; behind a sidecar, the mesh.
//!
//! ## `per-try-timeout-overrun`
//!
//! `(1 + retries.attempts) × retries.perTryTimeout` exceeds the route's `timeout`, with
//! retries on. The route timeout covers all tries together (Envoy: "the route timeout …
//! includes all retries"), so when the upstream is slow the later tries never start or the
//! last one is cut short: the configuration promises tries it cannot make. Reported on
//! `retries.perTryTimeout`, with how many tries can start. Routes without a `timeout` (Istio's
//! default: disabled) are not flagged. Fix: fewer attempts, a shorter per-try timeout, or a
//! longer route timeout.
//!
//! ## `code-timeout-not-above-mesh`
//!
//! The code's timeout for a call (the shorter of `timeout` and `deadline`) is shorter than,
//! or equal to, the longest the sidecar may take on its route: the route `timeout`, or
//! `tries × perTryTimeout` plus Envoy's back-off when that is shorter or no route timeout is
//! set. The code then cancels while the sidecar is still retrying, so the mesh's retries are
//! wasted and its `504 upstream request timeout` never reaches the code. Equal counts: both
//! fire together and which wins is a race. The advice from the write-up: keep the code's
//! timeout a little above the mesh's. Routes with no bound at all are not flagged: the
//! code's timeout is then the only one.
//!
//! ## `retry-non-idempotent`
//!
//! The sidecar retries a non-idempotent request (POST or PATCH, RFC 9110 section 9.2.2) on a
//! condition that can fire after the upstream application acted on it. Non-idempotent means a
//! route whose `match[].method` can select POST or PATCH (`exact`, a `prefix` of either, or a
//! `regex` naming either), or a call marked so in the client settings (`method` POST, PATCH,
//! CONNECT, or `idempotent = false`). Safe conditions, which only fire when the application
//! never saw the request, are `connect-failure`, `refused-stream` (HTTP/2 `REFUSED_STREAM`:
//! no processing happened, RFC 9113 section 8.7), `reset-before-request` (added to Envoy for
//! exactly this, envoyproxy/envoy#10007) and `envoy-ratelimited`; every other condition,
//! status codes included, is not (see [`crate::check::retry::RetryCondition::is_safe_for_non_idempotent`]).
//! Istio's default `retryOn` includes `retriable-status-codes` with 503, `unavailable` and
//! `cancelled`, so a POST route with `retries` unset is flagged: the default retries it.
//! Reported on `retries.retryOn` (or `retries` when unset).
//!
//! ## `outlier-ejects-all-hosts`
//!
//! An `outlierDetection` block (under `trafficPolicy`, a `portLevelSettings` entry, or a
//! subset's `trafficPolicy`) with `maxEjectionPercent` of 100 or more, `minHealthPercent` unset
//! or 0, and some ejection trigger on (`consecutive5xxErrors`, default 5 when unset and 0 to
//! turn it off; `consecutiveGatewayErrors` above 0; `consecutiveLocalOriginFailures` with
//! `splitExternalLocalOriginErrors`). Envoy ejects a host while
//! `100 × (ejected + 1) / hosts ≤ max_ejection_percent` (`outlier_detection_impl.cc`), so only
//! 100 lets it eject the last host, whatever the number of replicas; Istio's default is 10%
//! (`destination_rule.proto`). With `minHealthPercent` 0, Istio's default, Envoy's panic
//! threshold is off and it will not fall back to ejected hosts, so a fault shared by every
//! replica (a bad deploy, a failing database) turns into `503 no healthy upstream` for
//! `baseEjectionTime` (30 s by default) and longer on each repeat, after the cause is gone.
//! The message gives the threshold that triggers it. Fix: keep `maxEjectionPercent` below
//! 100, or set `minHealthPercent`.
//!
//! # Output and errors
//!
//! [`Report`] lists findings sorted by file, line, rule, resource and field, so the same
//! inputs always print the same report. Malformed input is a [`CheckError`] naming the file
//! and line: YAML syntax ([`CheckError::Yaml`]), a field of the wrong type or an unknown
//! `retryOn` condition ([`CheckError::Invalid`]), a bad client-settings file
//! ([`CheckError::Settings`]).

pub mod cli;
mod duration;
mod finding;
mod host;
mod istio;
pub mod retry;
mod rules;
mod settings;
mod yaml;

use std::path::{Path, PathBuf};

pub use finding::{Checked, ClientRef, Finding, Kind, Location, Report, Resource, Rule};

/// Input the checker cannot read; every variant names the file, and the line where there is
/// one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is neither YAML nor TOML by its extension.
    #[error("{}: not a .yaml, .yml (Istio resources) or .toml (client settings) file", file.display())]
    UnknownFileType {
        /// The file.
        file: PathBuf,
    },
    /// Malformed YAML.
    #[error("{}:{line}:{column}: malformed YAML: {message}", file.display())]
    Yaml {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// Well-formed YAML with a field Istio would reject (wrong type, unknown `retryOn`, a
    /// missing name or host).
    #[error("{}:{line}: {resource}: {field}: {message}", file.display())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// The resource, like `VirtualService bookinfo/reviews`.
        resource: String,
        /// The field path.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A malformed client-settings file.
    #[error("{}:{line}:{column}: client settings: {message}", file.display())]
    Settings {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

impl CheckError {
    /// The file the error is in.
    pub fn file(&self) -> &Path {
        match self {
            CheckError::Read { file, .. }
            | CheckError::UnknownFileType { file }
            | CheckError::Yaml { file, .. }
            | CheckError::Invalid { file, .. }
            | CheckError::Settings { file, .. } => file,
        }
    }

    /// The 1-based line, when the error is at one.
    pub fn line(&self) -> Option<usize> {
        match self {
            CheckError::Yaml { line, .. }
            | CheckError::Invalid { line, .. }
            | CheckError::Settings { line, .. } => Some(*line),
            CheckError::Read { .. } | CheckError::UnknownFileType { .. } => None,
        }
    }
}

/// Collects Istio resources and client settings, then checks them together.
///
/// ```
/// use meshtrace::check::Checker;
///
/// let mut checker = Checker::new();
/// let err = checker.add_istio_yaml("bad.yaml", "kind: VirtualService\nspec: [unclosed\n").unwrap_err();
/// assert_eq!(err.file().to_str(), Some("bad.yaml"));
/// assert_eq!(err.line(), Some(3));
/// assert!(checker.check().is_clean());
/// ```
#[derive(Debug, Default)]
pub struct Checker {
    files: usize,
    virtual_services: Vec<istio::VirtualService>,
    destination_rules: Vec<istio::DestinationRule>,
    calls: Vec<settings::ClientCall>,
}

impl Checker {
    /// An empty checker.
    pub fn new() -> Self {
        Checker::default()
    }

    /// Reads a file: `.toml` as client settings, `.yaml`/`.yml` as Istio resources.
    ///
    /// # Errors
    ///
    /// Any [`CheckError`]; nothing from the file is kept on error.
    pub fn add_file(&mut self, path: impl AsRef<Path>) -> Result<(), CheckError> {
        let path = path.as_ref();
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let is_toml = match extension.as_deref() {
            Some("toml") => true,
            Some("yaml" | "yml") => false,
            _ => {
                return Err(CheckError::UnknownFileType {
                    file: path.to_path_buf(),
                })
            }
        };
        let text = std::fs::read_to_string(path).map_err(|source| CheckError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        if is_toml {
            self.add_client_settings(path, &text)
        } else {
            self.add_istio_yaml(path, &text)
        }
    }

    /// Reads Istio resources from YAML text; `file` names it in findings and errors.
    ///
    /// # Errors
    ///
    /// [`CheckError::Yaml`] or [`CheckError::Invalid`]; nothing from the text is kept on error.
    pub fn add_istio_yaml(&mut self, file: impl AsRef<Path>, text: &str) -> Result<(), CheckError> {
        let resources = istio::parse(file.as_ref(), text)?;
        self.files += 1;
        self.virtual_services.extend(resources.virtual_services);
        self.destination_rules.extend(resources.destination_rules);
        Ok(())
    }

    /// Reads a client-settings file from TOML text; `file` names it in findings and errors.
    ///
    /// # Errors
    ///
    /// [`CheckError::Settings`]; nothing from the text is kept on error.
    pub fn add_client_settings(
        &mut self,
        file: impl AsRef<Path>,
        text: &str,
    ) -> Result<(), CheckError> {
        let calls = settings::parse(file.as_ref(), text)?;
        self.files += 1;
        self.calls.extend(calls);
        Ok(())
    }

    /// Applies every rule to everything read so far.
    pub fn check(&self) -> Report {
        let findings = rules::run(&rules::Input {
            virtual_services: &self.virtual_services,
            destination_rules: &self.destination_rules,
            calls: &self.calls,
        });
        Report::new(
            findings,
            Checked {
                files: self.files,
                virtual_services: self.virtual_services.len(),
                destination_rules: self.destination_rules.len(),
                client_calls: self.calls.len(),
            },
        )
    }
}

/// Reads every file with [`Checker::add_file`] and checks them together.
///
/// # Errors
///
/// The first file that cannot be read, as a [`CheckError`].
pub fn check_files<P: AsRef<Path>>(
    paths: impl IntoIterator<Item = P>,
) -> Result<Report, CheckError> {
    let mut checker = Checker::new();
    for path in paths {
        checker.add_file(path)?;
    }
    Ok(checker.check())
}
