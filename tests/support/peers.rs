//! Programs the project did not write, which some tests run beside it: the official
//! OpenTelemetry SDKs of other languages (`tests/peers/`) and a real Jaeger. They are found
//! on the machine, never downloaded by a test.
//!
//! Without one, a test that needs it says why in one line and passes, so the README's test
//! command needs only Rust. With `MESHTRACE_REQUIRE_PEERS=1` (`.ci/run` sets it, after
//! building every peer) a missing peer fails the test instead.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::ChildStdout;

/// The variable that turns a missing peer from a skip into a failure.
pub const REQUIRE_PEERS: &str = "MESHTRACE_REQUIRE_PEERS";

/// Whether missing peers fail the tests (`MESHTRACE_REQUIRE_PEERS=1`).
pub fn required() -> bool {
    std::env::var(REQUIRE_PEERS).is_ok_and(|v| v == "1")
}

/// Says in one line why `test` is skipped, past the harness's capture so that it shows in a
/// plain `cargo test`; fails instead when peers are [`required`].
pub fn skip<T>(test: &str, why: impl std::fmt::Display) -> Option<T> {
    assert!(!required(), "{test}: {REQUIRE_PEERS}=1 but {why}");
    let _ = writeln!(std::io::stderr(), "skipping {test}: {why}");
    None
}

/// The folder `.ci/build-peers.sh` builds Jaeger and the Go peer into, kept between runs on
/// the same machine: `$MESHTRACE_CACHE`, else `$XDG_CACHE_HOME/meshtrace`, else
/// `$HOME/.cache/meshtrace`.
pub fn cache_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    var("MESHTRACE_CACHE")
        .map(PathBuf::from)
        .or_else(|| var("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("meshtrace")))
        .or_else(|| var("HOME").map(|d| PathBuf::from(d).join(".cache/meshtrace")))
}

/// The file the variable `var` names, if it is set: its path, or why it is no program.
pub fn named_by(var: &str) -> Option<Result<PathBuf, String>> {
    let path = PathBuf::from(std::env::var_os(var).filter(|v| !v.is_empty())?);
    Some(if path.is_file() {
        Ok(path)
    } else {
        Err(format!("{var}={} is not a file", path.display()))
    })
}

/// A program named by the variable `var`, else at `default` under the [`cache_dir`]: its
/// path, or why there is none (for [`skip`]).
pub fn program(var: &str, default: &str) -> Result<PathBuf, String> {
    if let Some(named) = named_by(var) {
        return named;
    }
    let Some(cache) = cache_dir() else {
        return Err(format!(
            "{var} is not set and there is no HOME for the cache"
        ));
    };
    let path = cache.join(default);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{var} is not set and {} does not exist (`.ci/build-peers.sh` builds it; it needs Go)",
            path.display()
        ))
    }
}

/// The address a child process says it listens on, in its first line of output
/// (`listening on ADDR`, the contract of the Go peer and of the examples the tests run).
pub fn listening_on(stdout: &mut BufReader<ChildStdout>, who: &str) -> String {
    let mut line = String::new();
    stdout.read_line(&mut line).expect("the child's first line");
    line.trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{who} said {line:?}, not `listening on ADDR`"))
        .to_owned()
}
