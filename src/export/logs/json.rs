//! The JSON format: one object per line.
//!
//! ```text
//! {"timestamp":"2025-06-02T09:14:03.512337Z","level":"INFO","target":"orders","message":"loaded","fields":{"order":7},"spans":[{"name":"server","otel.name":"GET /orders/{id}","otel.kind":"server"}],"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","x_request_id":"2f0c7d1e-8a3b-4c5d-9e6f-7a8b9c0d1e2f"}
//! ```
//!
//! `message` is always there (empty when the event has none); the event's other fields are
//! under `fields`, so that a field of its own named `trace_id` cannot hide the line's; `spans`
//! lists the spans the fmt layer's filter shows, outermost first, each with its fields. The
//! ids are left out when there are none, never written as zeros.
//!
//! Written here rather than with tracing-subscriber's `json` feature: that formatter's keys
//! are fixed, with no way to add the ids short of reparsing its output, and it serializes
//! each line into a `String` of its own before copying it into the layer's buffer; this one
//! writes straight into the buffer and needs no serde.

use super::ids::Subscriber as Ids;
use std::fmt::{self, Write as _};
use tracing::field::{Field, Visit};
use tracing::span::Record;
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The JSON [`FormatEvent`].
#[derive(Debug, Clone, Default)]
pub(super) struct Json(pub(super) Ids);

/// Span fields as JSON members (`"key":value,...`), kept in each span's extensions by the fmt
/// layer and written into `spans`.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct JsonFields;

impl<S> FormatEvent<S, JsonFields> for Json
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        w.write_str("{\"timestamp\":\"")?;
        SystemTime.format_time(&mut w)?;
        write!(w, "\",\"level\":\"{}\",\"target\":", meta.level().as_str())?;
        string(&mut w, meta.target())?;

        w.write_str(",\"message\":")?;
        let mut message = MessageVisitor {
            w: &mut w,
            found: false,
            result: Ok(()),
        };
        event.record(&mut message);
        if !message.found {
            message.w.write_str("\"\"")?;
        }
        message.result?;

        w.write_str(",\"fields\":{")?;
        let mut fields = FieldsVisitor::new(&mut w, true, true);
        event.record(&mut fields);
        fields.result?;

        w.write_str("},\"spans\":[")?;
        if let Some(scope) = ctx.event_scope() {
            for (i, span) in scope.from_root().enumerate() {
                w.write_str(if i == 0 { "{\"name\":" } else { ",{\"name\":" })?;
                string(&mut w, span.name())?;
                let extensions = span.extensions();
                if let Some(fields) = extensions
                    .get::<FormattedFields<JsonFields>>()
                    .filter(|f| !f.is_empty())
                {
                    write!(w, ",{fields}")?;
                }
                w.write_char('}')?;
            }
        }
        w.write_char(']')?;

        self.0.with_ids(event, |ids| {
            if let Some((trace_id, span_id)) = ids.span {
                write!(w, ",\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"")?;
            }
            if let Some(request_id) = ids.request_id {
                w.write_str(",\"x_request_id\":")?;
                string(&mut w, request_id)?;
            }
            Ok(())
        })?;
        w.write_str("}\n")
    }
}

impl<'w> FormatFields<'w> for JsonFields {
    fn format_fields<R: RecordFields>(&self, mut w: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = FieldsVisitor::new(&mut w, true, false);
        fields.record(&mut visitor);
        visitor.result
    }

    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &Record<'_>,
    ) -> fmt::Result {
        let first = current.is_empty();
        let mut w = current.as_writer();
        let mut visitor = FieldsVisitor::new(&mut w, first, false);
        fields.record(&mut visitor);
        visitor.result
    }
}

/// Writes the `message` field's value, and only that.
struct MessageVisitor<'a, 'w> {
    w: &'a mut Writer<'w>,
    found: bool,
    result: fmt::Result,
}

impl Visit for MessageVisitor<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" && !self.found {
            self.found = true;
            self.result = string(self.w, value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" && !self.found {
            self.found = true;
            self.result = quoted(self.w, format_args!("{value:?}"));
        }
    }
}

/// Writes fields as JSON members, numbers and booleans as themselves, everything else as a
/// string.
struct FieldsVisitor<'a, 'w> {
    w: &'a mut Writer<'w>,
    first: bool,
    skip_message: bool,
    result: fmt::Result,
}

impl<'a, 'w> FieldsVisitor<'a, 'w> {
    fn new(w: &'a mut Writer<'w>, first: bool, skip_message: bool) -> Self {
        FieldsVisitor {
            w,
            first,
            skip_message,
            result: Ok(()),
        }
    }

    /// Writes `"key":` and then the value with `value`, unless the field is skipped or an
    /// earlier write failed.
    fn member(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'w>) -> fmt::Result) {
        if self.result.is_err() || (self.skip_message && field.name() == "message") {
            return;
        }
        self.result = (|| {
            if !std::mem::take(&mut self.first) {
                self.w.write_char(',')?;
            }
            string(self.w, field.name())?;
            self.w.write_char(':')?;
            value(self.w)
        })();
    }
}

impl Visit for FieldsVisitor<'_, '_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity.
        self.member(field, |w| match value.is_finite() {
            true => write!(w, "{value}"),
            false => quoted(w, format_args!("{value}")),
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |w| string(w, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |w| quoted(w, format_args!("{value:?}")));
    }
}

/// `s` as a JSON string.
fn string(w: &mut Writer<'_>, s: &str) -> fmt::Result {
    w.write_char('"')?;
    Escaped(w).write_str(s)?;
    w.write_char('"')
}

/// `args` formatted as a JSON string, escaped as it is written (no intermediate `String`).
fn quoted(w: &mut Writer<'_>, args: fmt::Arguments<'_>) -> fmt::Result {
    w.write_char('"')?;
    Escaped(w).write_fmt(args)?;
    w.write_char('"')
}

/// Escapes what JSON strings cannot hold as it is: quotes, backslashes and control
/// characters, ESC included (so no ANSI sequence reaches a terminal through a log line).
struct Escaped<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut plain = 0;
        for (i, b) in s.bytes().enumerate() {
            let escape = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f | 0x7f => "",
                _ => continue,
            };
            self.0.write_str(&s[plain..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{b:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            plain = i + 1;
        }
        self.0.write_str(&s[plain..])
    }
}

#[cfg(test)]
mod tests {
    use super::Escaped;
    use std::fmt::Write;

    #[test]
    fn escapes_what_json_strings_cannot_hold() {
        let mut out = String::new();
        Escaped(&mut out)
            .write_str("a\"b\\c\nd\te\u{1b}[31mf\u{7f}é")
            .unwrap();
        assert_eq!(out, r#"a\"b\\c\nd\te\u001b[31mf\u007fé"#);
        let parsed: String = serde_json::from_str(&format!("\"{out}\"")).unwrap();
        assert_eq!(parsed, "a\"b\\c\nd\te\u{1b}[31mf\u{7f}é");
    }
}
