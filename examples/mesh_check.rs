//! Checks Istio `VirtualService`/`DestinationRule` YAML and the app's client settings for
//! retries and timeouts that fight the mesh.
//!
//! ```sh
//! cargo run --example mesh_check -- istio/*.yaml client.toml
//! ```
//!
//! `.yaml`/`.yml` files are Istio resources (any number of documents each), `.toml` files
//! are client settings (format in the `meshtrace::check` docs). Every finding is printed with
//! its file and line, rule, resource and field, then a summary line.
//!
//! Exit status: 0 when nothing is found, 1 when there are findings, 2 when an input cannot
//! be read (the error, on standard error, names the file and line) or no file was given.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let status = run(
        &args,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    ExitCode::from(status)
}

/// Checks `files`, printing the report to `out` and problems to `err`; returns the exit
/// status. Separate from `main` so that tests/mesh_check.rs can run it in-process.
pub(crate) fn run(files: &[String], out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    if files.is_empty() || files.iter().any(|f| f == "-h" || f == "--help") {
        let _ = writeln!(
            err,
            "usage: mesh_check FILE.yaml|FILE.toml…\n  \
             .yaml/.yml: Istio VirtualService and DestinationRule resources\n  \
             .toml: the app's client settings (see the meshtrace::check docs)\n\
             exit status: 0 no findings, 1 findings, 2 unreadable input"
        );
        return 2;
    }
    match meshtrace::check::check_files(files) {
        Ok(report) => {
            let _ = writeln!(out, "{report}");
            if report.is_clean() {
                0
            } else {
                1
            }
        }
        Err(e) => {
            let _ = writeln!(err, "mesh_check: {e}");
            2
        }
    }
}
