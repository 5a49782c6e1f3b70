//! What the benches share: reading criterion's results back for the ratio tables they print.

use std::path::PathBuf;
use std::time::SystemTime;

/// Criterion's median estimate for one benchmark, in nanoseconds, if it was written by this
/// run (`since` is when the run started), not left over from an earlier one.
pub fn median_ns(group: &str, name: &str, since: SystemTime) -> Option<f64> {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let path = dir
        .join("criterion")
        .join(group)
        .join(name)
        .join("new/estimates.json");
    if std::fs::metadata(&path).ok()?.modified().ok()? < since {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    json["median"]["point_estimate"].as_f64()
}
