//! Checks Istio `VirtualService`/`DestinationRule` YAML and the app's client settings for
//! retries and timeouts that fight the mesh.
//!
//! ```sh
//! cargo install meshtrace --features check
//! mesh-check istio/*.yaml client.toml
//! ```
//!
//! `.yaml`/`.yml` files are Istio resources (any number of documents each), `.toml` files
//! are client settings (format in the `meshtrace::check` docs). Every finding is printed with
//! its file and line, rule, resource and field, then a summary line.
//!
//! Exit status: 0 when nothing is found, 1 when there are findings, 2 when an input cannot
//! be read (the error, on standard error, names the file and line) or no file was given.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    ExitCode::from(meshtrace::check::cli::run(
        &args,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    ))
}
