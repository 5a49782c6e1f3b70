//! Table tests: one report of every failing row, and rows shown in a failure message.

/// Fails with every collected failure at once, so one run shows all failing vectors.
pub fn report(table: &str, failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} failing vector(s) in {table}:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Header (name, value) pairs of a row, shown as `name: "value" | ...`.
pub fn show_pairs(pairs: &[(&str, &[u8])]) -> String {
    pairs
        .iter()
        .map(|(n, v)| format!("{n}: {:?}", String::from_utf8_lossy(v)))
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Header lines of a row, shown as `"line" | ...`.
pub fn show_lines(lines: &[&[u8]]) -> String {
    lines
        .iter()
        .map(|l| format!("{:?}", String::from_utf8_lossy(l)))
        .collect::<Vec<_>>()
        .join(" | ")
}
