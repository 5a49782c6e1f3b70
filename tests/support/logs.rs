//! Log lines captured from `TelemetryBuilder::log_writer`, and read back: the text format's
//! `key=value` ids and the JSON format's objects.

use std::io;
use std::sync::{Arc, Mutex};
use tracing_subscriber::fmt::MakeWriter;

/// Everything the fmt layer wrote, shared with the test. The layer writes each line with one
/// `write_all`, so lines never interleave.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// The lines written so far.
    pub fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8(bytes.clone())
            .expect("log lines are UTF-8")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The one line containing `needle`.
    pub fn line_with(&self, needle: &str) -> String {
        let lines = self.lines();
        let found: Vec<_> = lines.iter().filter(|l| l.contains(needle)).collect();
        assert_eq!(found.len(), 1, "one line with {needle:?} in {lines:#?}");
        found[0].clone()
    }
}

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The value of `key=` in a text line (the ids are unquoted `key=value` pairs).
pub fn text_value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let prefix = format!("{key}=");
    line.split(' ')
        .find_map(|word| word.strip_prefix(prefix.as_str()))
}
