//! The client-settings file: what the application's own code does on each upstream call.
//! The format is described in the [module docs](super#the-client-settings-file).

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::check::retry::{Backoff, RetryPolicy};

use super::finding::{ClientRef, Location};
use super::{duration, CheckError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    namespace: Option<Spanned<String>>,
    #[serde(default)]
    calls: BTreeMap<String, Spanned<RawCall>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCall {
    host: Option<Spanned<String>>,
    method: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
    idempotent: Option<Spanned<bool>>,
    retries: Option<Spanned<u32>>,
    timeout: Option<Spanned<String>>,
    deadline: Option<Spanned<String>>,
    backoff: Option<Spanned<RawBackoff>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackoff {
    initial: Spanned<String>,
    max: Option<Spanned<String>>,
    multiplier: Option<f64>,
}

/// One call the application makes, with the line of each field the rules quote.
#[derive(Debug, Clone)]
pub(crate) struct ClientCall {
    pub(crate) name: String,
    pub(crate) file: PathBuf,
    pub(crate) line: usize,
    /// The app's namespace: where its pod resolves short names.
    pub(crate) namespace: String,
    pub(crate) host: String,
    pub(crate) method: Option<(String, usize)>,
    pub(crate) path: Option<String>,
    pub(crate) idempotent: Option<(bool, usize)>,
    pub(crate) policy: RetryPolicy,
    pub(crate) retries_line: Option<usize>,
    pub(crate) timeout_line: Option<usize>,
    pub(crate) deadline_line: Option<usize>,
}

/// Methods that are not idempotent (RFC 9110, section 9.2.2): a repeat can act twice.
const NON_IDEMPOTENT_METHODS: [&str; 3] = ["POST", "PATCH", "CONNECT"];

impl ClientCall {
    pub(crate) fn reference(&self, field: &str, line: Option<usize>) -> ClientRef {
        ClientRef {
            call: self.name.clone(),
            field: format!("calls.{}.{field}", self.name),
            location: Location::new(&self.file, line.unwrap_or(self.line)),
        }
    }

    /// `Some(reference to the field that says so)` when the call is not idempotent: marked
    /// `idempotent = false`, or a POST/PATCH/CONNECT not marked `idempotent = true`.
    pub(crate) fn non_idempotent(&self) -> Option<ClientRef> {
        match (&self.idempotent, &self.method) {
            (Some((false, line)), _) => Some(self.reference("idempotent", Some(*line))),
            (Some((true, _)), _) => None,
            (None, Some((method, line))) if NON_IDEMPOTENT_METHODS.contains(&method.as_str()) => {
                Some(self.reference("method", Some(*line)))
            }
            _ => None,
        }
    }

    /// The field behind the code's effective timeout (the shorter of `timeout` and `deadline`).
    pub(crate) fn timeout_reference(&self) -> ClientRef {
        let deadline_wins = match (self.policy.per_attempt_timeout(), self.policy.deadline()) {
            (Some(t), Some(d)) => d < t,
            (None, Some(_)) => true,
            _ => false,
        };
        if deadline_wins {
            self.reference("deadline", self.deadline_line)
        } else {
            self.reference("timeout", self.timeout_line)
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn error(&self, span: Range<usize>, message: impl Into<String>) -> CheckError {
        let line = line_of(self.text, span.start);
        let line_start = self.text[..span.start.min(self.text.len())]
            .rfind('\n')
            .map_or(0, |i| i + 1);
        CheckError::Settings {
            file: self.file.to_path_buf(),
            line,
            column: self.text[line_start..span.start.min(self.text.len())]
                .chars()
                .count()
                + 1,
            message: message.into(),
        }
    }

    fn duration(&self, value: &Spanned<String>, field: &str) -> Result<Duration, CheckError> {
        duration::parse(value.get_ref())
            .map_err(|e| self.error(value.span(), format!("{field}: {e}")))
    }
}

pub(crate) fn parse(file: &Path, text: &str) -> Result<Vec<ClientCall>, CheckError> {
    let ctx = Ctx { file, text };
    let raw: RawSettings = toml::from_str(text).map_err(|e| {
        let message = e.message().trim_end().to_owned();
        match e.span() {
            Some(span) => ctx.error(span, message),
            None => CheckError::Settings {
                file: file.to_path_buf(),
                line: 1,
                column: 1,
                message,
            },
        }
    })?;
    let namespace = raw
        .namespace
        .map_or_else(|| "default".to_owned(), Spanned::into_inner);
    raw.calls
        .into_iter()
        .map(|(name, call)| {
            let line = line_of(text, call.span().start);
            let call = call.into_inner();
            let at = |field: &str| format!("calls.{name}.{field}");
            let mut policy = RetryPolicy::new();
            if let Some(r) = &call.retries {
                policy = policy.with_retries(*r.get_ref());
            }
            if let Some(t) = &call.timeout {
                policy = policy.with_per_attempt_timeout(ctx.duration(t, &at("timeout"))?);
            }
            if let Some(d) = &call.deadline {
                policy = policy.with_deadline(ctx.duration(d, &at("deadline"))?);
            }
            if let Some(b) = &call.backoff {
                let raw = b.get_ref();
                let initial = ctx.duration(&raw.initial, &at("backoff.initial"))?;
                let max = match &raw.max {
                    Some(m) => ctx.duration(m, &at("backoff.max"))?,
                    None => initial.saturating_mul(10),
                };
                let backoff = Backoff::exponential(initial, max, raw.multiplier.unwrap_or(2.0))
                    .map_err(|e| ctx.error(b.span(), format!("{}: {e}", at("backoff"))))?;
                policy = policy.with_backoff(backoff);
            }
            let method = call.method.as_ref().map(|m| {
                (
                    m.get_ref().to_ascii_uppercase(),
                    line_of(text, m.span().start),
                )
            });
            Ok(ClientCall {
                host: call
                    .host
                    .as_ref()
                    .map_or_else(|| name.clone(), |h| h.get_ref().clone()),
                file: file.to_path_buf(),
                line,
                namespace: namespace.clone(),
                method,
                path: call.path.map(Spanned::into_inner),
                idempotent: call
                    .idempotent
                    .as_ref()
                    .map(|i| (*i.get_ref(), line_of(text, i.span().start))),
                policy,
                retries_line: call.retries.as_ref().map(|r| line_of(text, r.span().start)),
                timeout_line: call.timeout.as_ref().map(|t| line_of(text, t.span().start)),
                deadline_line: call
                    .deadline
                    .as_ref()
                    .map(|d| line_of(text, d.span().start)),
                name,
            })
        })
        .collect()
}
