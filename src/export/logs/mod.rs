//! Log lines that say which request they belong to: the fmt layer [`init`](crate::init)
//! installs writes, on every line inside a request, the `trace_id` and `span_id` of the
//! current span (W3C lowercase hex, as the exporter sends them) and the request's
//! `x_request_id` (the key of Envoy's access log lines), in text or JSON ([`LogFormat`]).
//!
//! The names are the same in both formats: `trace_id` and `span_id` as OpenTelemetry
//! recommends for logs that are not OTLP, and `x_request_id` in the same snake case (a dash
//! is an operator in most log query languages). A line outside any request carries none of
//! them. The ids are looked up only for lines the filter lets through, and written straight
//! into the fmt layer's line buffer.

mod ids;
mod json;
mod otlp;
mod text;

pub(super) use ids::Subscriber;
pub(super) use otlp::{bridge, logger_provider};

use std::io::IsTerminal;
use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::{Layer, Registry};

/// How log lines are written: `MESHTRACE_LOG_FORMAT=text` (the default) or `json`.
///
/// ```
/// use meshtrace::export::{LogFormat, TelemetryBuilder};
/// let builder = TelemetryBuilder::new().log_format(LogFormat::Json);
/// assert_eq!(builder.log_format_config(), LogFormat::Json);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LogFormat {
    /// tracing-subscriber's default line, with the ids as `key=value` pairs at its end.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message`, `fields`,
    /// `spans` and the ids.
    Json,
}

/// The fmt layer, boxed: each writer keeps its own type inside, so that writing a line costs
/// no more than the writer does (tracing-subscriber's `BoxMakeWriter` would box every line's
/// writer).
pub(super) type FmtLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// Where the fmt layer writes: builds the layer around its writer.
pub(super) struct LogOutput(Box<dyn FnOnce(LogFormat, EnvFilter, Subscriber) -> FmtLayer>);

impl LogOutput {
    /// Standard output, in colour when it is a terminal and `NO_COLOR` is not set.
    pub(super) fn stdout() -> Self {
        let ansi = std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        LogOutput(Box::new(move |format, filter, subscriber| {
            fmt_layer(format, filter, subscriber, std::io::stdout, ansi)
        }))
    }

    /// `writer`, without colour.
    pub(super) fn writer<W>(writer: W) -> Self
    where
        W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        LogOutput(Box::new(move |format, filter, subscriber| {
            fmt_layer(format, filter, subscriber, writer, false)
        }))
    }

    /// The layer; `subscriber` is to be [set](Subscriber::set) to the subscriber it goes into.
    pub(super) fn layer(
        self,
        format: LogFormat,
        filter: EnvFilter,
        subscriber: Subscriber,
    ) -> FmtLayer {
        (self.0)(format, filter, subscriber)
    }
}

fn fmt_layer<W>(
    format: LogFormat,
    filter: EnvFilter,
    subscriber: Subscriber,
    writer: W,
    ansi: bool,
) -> FmtLayer
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => layer
            .event_format(text::Text(subscriber))
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => layer
            .fmt_fields(json::JsonFields)
            .event_format(json::Json(subscriber))
            .with_filter(filter)
            .boxed(),
    }
}
