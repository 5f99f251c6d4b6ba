//! Percentiles of measured latencies, as the benchmarks print them.

use std::time::Duration;

/// The value at fraction `p` of `sorted` (nearest rank).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Prints `what: p50 …, p95 …, p99 …, max … (n samples)` in milliseconds.
pub fn report(what: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |p: f64| percentile(&v, p).as_secs_f64() * 1e3;
    println!(
        "{what}: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples)",
        ms(0.5),
        ms(0.95),
        ms(0.99),
        ms(1.0),
        v.len()
    );
}
