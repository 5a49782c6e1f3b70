//! The `mesh_demo` example, run as a user runs it (`tests/demo.rs` reads what it prints,
//! `tests/jaeger.rs` what it exported).
//!
//! `cargo test --all-features` builds the example before running the tests; the binary is
//! found next to the test's own (`target/<profile>/examples/mesh_demo`).

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the demo may run.
const TIMEOUT: Duration = Duration::from_secs(60);
/// The demo's services.
pub const SERVICES: [&str; 3] = ["productpage", "reviews", "ratings"];
/// The proxies in front of productpage, whose spans the demo's driver reports as Istio does.
pub const PROXIES: [&str; 2] = ["istio-ingressgateway", "productpage.default"];

/// The demo's binary (see [`example_binary`]).
pub fn demo_binary() -> PathBuf {
    example_binary("mesh_demo")
}

/// `target/<profile>/deps/<test>-<hash>` → `target/<profile>/examples/<name>`, refusing a
/// binary older than its source.
pub fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    let bin = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run `cargo test --all-features` (which builds the examples) or \
         `cargo build --all-features --example {name}` first",
        bin.display()
    );
    // `cargo test --test <one>` does not rebuild examples: refuse a binary older than its source.
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{name}.rs"));
    let modified = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(bin_time), Some(src_time)) = (modified(&bin), modified(&source)) {
        assert!(
            bin_time >= src_time,
            "{} is older than examples/{name}.rs: rebuild it with \
             `cargo build --all-features --example {name}`",
            bin.display()
        );
    }
    bin
}

/// How a run of the demo went.
pub struct Run {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

/// Runs the demo with no OpenTelemetry variables but `env`, killing it after [`TIMEOUT`].
pub fn run_demo(env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(demo_binary());
    for (name, _) in std::env::vars_os() {
        let otel = name.to_str().is_some_and(|n| n.starts_with("OTEL_"));
        if otel || name == "RUST_LOG" {
            cmd.env_remove(name);
        }
    }
    cmd.envs(env.iter().copied());
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mesh_demo");
    let mut stdout_pipe = child.stdout.take().expect("stdout");
    let mut stderr_pipe = child.stderr.take().expect("stderr");
    let stdout = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout_pipe.read_to_string(&mut s);
        s
    });
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr_pipe.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for mesh_demo") {
            break status;
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "mesh_demo still running after {TIMEOUT:?}; output so far:\n{}",
                stdout.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        success: status.success(),
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
        took: started.elapsed(),
    }
}
