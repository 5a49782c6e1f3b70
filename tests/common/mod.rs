//! Helpers shared by the table-test files.

/// Fails with every collected failure at once, so one run shows all failing vectors.
pub fn report(table: &str, failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} failing vector(s) in {table}:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
