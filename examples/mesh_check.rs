//! `cargo run --features check --example mesh_check -- FILES…`: the same as the installable
//! `mesh-check` binary (`cargo install meshtrace --features check`), kept for the commands
//! in older notes.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    ExitCode::from(meshtrace::check::cli::run(
        &args,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    ))
}
