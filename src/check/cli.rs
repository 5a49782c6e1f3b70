//! The `mesh-check` command line, as a function so that the binary and the tests run the same
//! code.

use std::io::Write;

/// Checks `files`, printing the report to `out` and problems to `err`, and returns the exit
/// status: 0 when nothing is found, 1 when there are findings, 2 when an input cannot be read
/// (the error names the file and line) or no file was given.
///
/// ```
/// let (mut out, mut err) = (Vec::new(), Vec::new());
/// assert_eq!(meshtrace::check::cli::run(&[], &mut out, &mut err), 2);
/// assert!(String::from_utf8(err).unwrap().starts_with("usage: mesh-check"));
/// ```
pub fn run(files: &[String], out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    if files.is_empty() || files.iter().any(|f| f == "-h" || f == "--help") {
        let _ = writeln!(
            err,
            "usage: mesh-check FILE.yaml|FILE.toml…\n  \
             .yaml/.yml: Istio VirtualService and DestinationRule resources\n  \
             .toml: the app's client settings (see the meshtrace::check docs)\n\
             exit status: 0 no findings, 1 findings, 2 unreadable input"
        );
        return 2;
    }
    match super::check_files(files) {
        Ok(report) => {
            let _ = writeln!(out, "{report}");
            if report.is_clean() {
                0
            } else {
                1
            }
        }
        Err(e) => {
            let _ = writeln!(err, "mesh-check: {e}");
            2
        }
    }
}
