//! Prometheus's own storage as a baseline for bytes per sample.

/// Bytes of the TSDB that Prometheus's `promtool tsdb create-blocks-from
/// openmetrics` builds from the OpenMetrics file `om` into `out` (Debian's
/// `prometheus` package).
pub fn promtool_tsdb_bytes(om: &std::path::Path, out: &std::path::Path) -> u64 {
    let status = std::process::Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(om)
        .arg(out)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("promtool (Debian's prometheus package)");
    assert!(status.success(), "promtool built the blocks");
    crate::measure::dir_bytes(out)
}
