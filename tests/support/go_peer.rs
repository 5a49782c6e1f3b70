//! The Go peers of `tests/peers/go` (go.opentelemetry.io/otel with otelgrpc and go-contrib's
//! propagators, pinned in its `go.mod`), one binary with two modes:
//!
//! - [`Mode::Grpc`]: a gRPC `meshtrace.test.Relay/Forward` service instrumented with
//!   `otelgrpc` and `autoprop`, which calls the next hop with the same path and exports its
//!   spans over OTLP;
//! - [`Mode::Http`]: an HTTP service with no OpenTelemetry at all, which forwards the Istio
//!   header list by hand, as the write-up's Go middleware does.
//!
//! The binary is `MESHTRACE_GO_PEER` if set, else built once per test process with the
//! machine's `go` into cargo's scratch folder for tests (Go's own build cache makes that quick
//! after the first time). Without either, the test is skipped ([`peers::skip`]).

use super::peers;
use std::io::BufReader;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The variable naming a built peer binary.
pub const GO_PEER_VAR: &str = "MESHTRACE_GO_PEER";
const SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/go");

/// What the peer does with a request.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// otelgrpc server and client, `OTEL_PROPAGATORS` through autoprop.
    Grpc,
    /// Forwards the write-up's header list by hand; no spans.
    Http,
}

/// The peer binary, or why there is none.
fn binary() -> &'static Result<PathBuf, String> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(named) = peers::named_by(GO_PEER_VAR) {
            return named;
        }
        if !std::path::Path::new(SOURCE).join("go.mod").is_file() {
            return Err(format!(
                "{GO_PEER_VAR} is not set and {SOURCE}/go.mod is missing"
            ));
        }
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("meshtrace-go-peer");
        let started = Instant::now();
        let build = Command::new("go")
            .args(["build", "-o"])
            .arg(&out)
            .arg(".")
            .current_dir(SOURCE)
            .output();
        match build {
            Err(e) => Err(format!("{GO_PEER_VAR} is not set and `go` cannot run: {e}")),
            Ok(o) if !o.status.success() => Err(format!(
                "`go build` in tests/peers/go failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Ok(_) => {
                eprintln!(
                    "built the Go peer in {:.1} s",
                    started.elapsed().as_secs_f64()
                );
                Ok(out)
            }
        }
    })
}

/// A running Go peer; stopped when dropped (its stdin closes, it shuts its tracer provider
/// down, exporting what it has, and exits).
pub struct GoPeer {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl GoPeer {
    /// Starts the peer in `mode` with `next` as its next hop (`host:port`) and `env` added to
    /// a clean environment (no `OTEL_*` of the test process), or skips `test`.
    pub fn start(
        test: &str,
        mode: Mode,
        next: SocketAddr,
        env: &[(&str, String)],
    ) -> Option<GoPeer> {
        let binary = match binary() {
            Ok(binary) => binary,
            Err(why) => return peers::skip(test, format!("no Go peer: {why}")),
        };
        let mut cmd = Command::new(binary);
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_some_and(|n| n.starts_with("OTEL_")) {
                cmd.env_remove(name);
            }
        }
        let mode = match mode {
            Mode::Grpc => "grpc",
            Mode::Http => "http",
        };
        let mut child = cmd
            .args(["-mode", mode, "-listen", "127.0.0.1:0", "-next"])
            .arg(next.to_string())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let said = peers::listening_on(&mut stdout, &format!("the Go peer ({mode})"));
        let addr = said
            .parse()
            .unwrap_or_else(|_| panic!("the Go peer ({mode}) listens on {said:?}"));
        // Whatever else it prints goes nowhere (a full pipe would block it).
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Some(GoPeer { child, stdin, addr })
    }

    /// Stops the peer (see the type's docs), killing it if it takes longer than 10 s.
    pub fn stop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for GoPeer {
    fn drop(&mut self) {
        self.stop();
    }
}
