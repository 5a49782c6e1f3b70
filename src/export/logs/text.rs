//! The text format: tracing-subscriber's default line (time, level, spans with their fields,
//! target, message and fields) with the ids after the fields, as more `key=value` pairs:
//!
//! ```text
//! 2025-06-02T09:14:03.512337Z  INFO server{otel.name="GET /orders/{id}" otel.kind="server"}: orders: loaded order=7 trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7 x_request_id=2f0c7d1e-8a3b-4c5d-9e6f-7a8b9c0d1e2f
//! ```
//!
//! It is written by hand rather than by wrapping tracing-subscriber's formatter: that one
//! ends the line itself, and a wrapper could add to it only by buffering the line (an
//! allocation) or by rebuilding the `Writer`, which would lose its ANSI settings.

use super::ids::{LineIds, Subscriber as Ids};
use std::fmt::{self, Display};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The text [`FormatEvent`].
#[derive(Debug, Clone, Default)]
pub(super) struct Text(pub(super) Ids);

impl<S> FormatEvent<S, DefaultFields> for Text
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, DefaultFields>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let ansi = w.has_ansi_escapes();
        let meta = event.metadata();
        SystemTime.format_time(&mut w)?;
        let level = meta.level();
        write!(
            w,
            " {} ",
            Paint(
                ansi,
                level_colour(level),
                format_args!("{:>5}", level.as_str())
            )
        )?;
        if let Some(scope) = ctx.event_scope() {
            let mut any = false;
            for span in scope.from_root() {
                any = true;
                write!(w, "{}", Paint(ansi, BOLD, span.name()))?;
                let extensions = span.extensions();
                if let Some(fields) = extensions
                    .get::<FormattedFields<DefaultFields>>()
                    .filter(|f| !f.is_empty())
                {
                    write!(w, "{{{fields}}}")?;
                }
                w.write_char(':')?;
            }
            if any {
                w.write_char(' ')?;
            }
        }
        write!(w, "{}: ", Paint(ansi, DIM, meta.target()))?;
        ctx.format_fields(w.by_ref(), event)?;
        self.0.with_ids(event, |ids| write_ids(&mut w, ids, ansi))?;
        writeln!(w)
    }
}

fn write_ids(w: &mut Writer<'_>, ids: LineIds<'_>, ansi: bool) -> fmt::Result {
    if let Some((trace_id, span_id)) = ids.span {
        write!(
            w,
            " {}={trace_id} {}={span_id}",
            Paint(ansi, ITALIC, "trace_id"),
            Paint(ansi, ITALIC, "span_id")
        )?;
    }
    if let Some(request_id) = ids.request_id {
        write!(w, " {}={request_id}", Paint(ansi, ITALIC, "x_request_id"))?;
    }
    Ok(())
}

const BOLD: &str = "1";
const DIM: &str = "2";
const ITALIC: &str = "3";

/// tracing-subscriber's colours, so that switching formatters changes only the ids.
fn level_colour(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "35",
        Level::DEBUG => "34",
        Level::INFO => "32",
        Level::WARN => "33",
        _ => "31",
    }
}

/// `T` in the ANSI style `.1` (an SGR code) when `.0`, else as it is.
struct Paint<T>(bool, &'static str, T);

impl<T: Display> Display for Paint<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 {
            write!(f, "\x1b[{}m{}\x1b[0m", self.1, self.2)
        } else {
            self.2.fmt(f)
        }
    }
}
