//! `tickrec bench --pool OUT.json…`: the rounds of several `bench --json` outputs pooled, ratio
//! by ratio, with the same median, interval and verdict as one run's table.
//!
//! Pooling assumes the files measured the same code on the same kind of machine; each file's own
//! line comes first, so that a file apart from the others shows.

use std::io::Write;
use std::path::PathBuf;

use super::report::{Verdict, END_TO_END_TARGET, SUBSCRIBERS_BAND, TAILS_TARGET, WRITER_TARGET};
use super::{median_interval, quantile};

/// The ratios with a target: (key of the rounds, what they are, target, whether the target is
/// a bound the median must stay within rather than reach).
const RATIOS: [(&str, &str, f64, bool); 7] = [
    (
        "writer_vs_ceiling_rounds",
        "writer over the ceiling",
        WRITER_TARGET,
        false,
    ),
    (
        "writer_with_queries_vs_ceiling_rounds",
        "writer beside the live-day reader over its ceiling",
        WRITER_TARGET,
        false,
    ),
    (
        "end_to_end_vs_ceiling_rounds",
        "end to end over its ceiling",
        END_TO_END_TARGET,
        false,
    ),
    (
        "writer_with_tails_ratios",
        "writer with four tails over alone",
        TAILS_TARGET,
        false,
    ),
    (
        "publish_store_tick_p99_ratios",
        "store_tick p99, 8 subscribers over none",
        SUBSCRIBERS_BAND,
        true,
    ),
    (
        "publish_store_tick_p999_ratios",
        "store_tick p99.9, 8 subscribers over none",
        SUBSCRIBERS_BAND,
        true,
    ),
    (
        "publish_store_tick_p999_fine_ratios",
        "store_tick p99.9 read between the clock's steps, 8 subscribers over none",
        SUBSCRIBERS_BAND,
        true,
    ),
];

/// One line: `15 rounds, median 0.9072, within 0.873–0.919 at 96.5 %, 10 on the target's side:
/// not settled`.
fn line(v: &[f64], target: f64, bound: bool) -> String {
    let side = v
        .iter()
        .filter(|&&x| if bound { x <= target } else { x >= target })
        .count();
    let interval = median_interval(v, 0.95);
    let within = interval.map_or(String::new(), |(lo, hi, c)| {
        format!(", within {lo:.3}–{hi:.3} at {:.1} %", c * 100.0)
    });
    let interval = interval.map(|(lo, hi, _)| [lo, hi]);
    let verdict = if bound {
        Verdict::of_bound(interval, target)
    } else {
        Verdict::of(interval, target)
    };
    let said = verdict.map_or("fewer than six rounds: no interval", Verdict::said);
    format!(
        "{:>3} rounds, median {:.4}{within}, {side} on the target's side: {said}",
        v.len(),
        quantile(v, 0.5)
    )
}

/// Prints each ratio's rounds file by file, then pooled.
pub fn run(files: &[PathBuf], out: &mut dyn Write) -> anyhow::Result<()> {
    let mut runs = Vec::with_capacity(files.len());
    for f in files {
        let text = std::fs::read(f)
            .map_err(|e| anyhow::anyhow!("{}: cannot read it: {e}", f.display()))?;
        let v: serde_json::Value = serde_json::from_slice(&text).map_err(|e| {
            anyhow::anyhow!("{}: not the output of `bench --json`: {e}", f.display())
        })?;
        runs.push((f, v));
    }
    for (key, what, target, bound) in RATIOS {
        let mut pooled = Vec::new();
        writeln!(
            out,
            "{what} (target {} {target:.2}):",
            if bound { "<=" } else { ">=" }
        )?;
        for (f, v) in &runs {
            let rounds: Vec<f64> = v[key]
                .as_array()
                .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
                .unwrap_or_default();
            if rounds.is_empty() {
                continue;
            }
            writeln!(out, "  {}: {}", f.display(), line(&rounds, target, bound))?;
            pooled.extend(rounds);
        }
        if pooled.is_empty() {
            // A stage none of the files ran (`--only`), or files of another tool.
            writeln!(out, "  no rounds of it in these files")?;
        } else {
            writeln!(out, "  pooled: {}", line(&pooled, target, bound))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::line;

    #[test]
    fn a_pooled_line_gives_the_median_its_interval_and_the_verdict_either_way() {
        let v: Vec<f64> = (0..15).map(|i| 0.80 + 0.01 * f64::from(i)).collect();
        assert_eq!(
            line(&v, 0.9, false),
            " 15 rounds, median 0.8700, within 0.830–0.910 at 96.5 %, 5 on the target's side: target inside it: not settled by these rounds"
        );
        assert!(line(&v, 0.82, false).ends_with(": target met"));
        assert!(line(&v, 0.95, true).ends_with(": target met"));
        assert!(line(&v, 0.82, true).ends_with(": target missed"));
        assert!(line(&v[..5], 0.9, false).ends_with("fewer than six rounds: no interval"));
    }
}
