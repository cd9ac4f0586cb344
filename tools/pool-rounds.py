#!/usr/bin/env python3
"""Pools the rounds of several `tickrec bench --json` outputs, ratio by ratio.

    python3 tools/pool-rounds.py run55.json run56.json run57.json

For each ratio with a target: the rounds of every file together, their median (linear
quantiles, as `bench` computes them), the sign test's interval for the median at 95 % or more
(the k-th smallest and k-th largest rounds, as `bench`'s `median_interval`), and what that
says of the target: met (the whole interval at or above it), missed (all below) or not settled.
Pooling assumes the files measured the same code on the same kind of machine; each file's own
figures are printed first, so that a file apart from the others shows.
"""

import json
import math
import sys

RATIOS = [
    ("writer_vs_ceiling_rounds", "writer over the ceiling", 0.90),
    ("writer_with_queries_vs_ceiling_rounds", "writer beside the live-day reader", 0.90),
    ("end_to_end_vs_ceiling_rounds", "end to end over its ceiling", 0.75),
    ("writer_with_tails_ratios", "writer with four tails over alone", 0.95),
]
# Ratios held within a bound: store_tick with eight subscribers over without, round by round.
BOUNDS = [
    ("publish_store_tick_p99_ratios", "store_tick p99, 8 subscribers over none", 1.10),
    ("publish_store_tick_p999_ratios", "store_tick p99.9, 8 subscribers over none", 1.10),
]


def quantile(v, q):
    v = sorted(v)
    last = len(v) - 1
    at = q * last
    lo, hi = math.floor(at), math.ceil(at)
    return v[lo] + (v[hi] - v[lo]) * (at - lo)


def median_interval(v, confidence=0.95):
    """(lo, hi, coverage) or None: the sign test's interval, as `bench` computes it."""
    n = len(v)
    s = sorted(v)
    below, best = 0.0, None
    for k in range(1, n // 2 + 1):
        below += math.comb(n, k - 1) / 2**n
        coverage = 1.0 - 2.0 * below
        if coverage < confidence:
            break
        best = (s[k - 1], s[n - k], coverage)
    return best


def verdict(interval, target, bound=False):
    """A target the median must reach, or (bound) one it must stay within."""
    if interval is None:
        return "fewer than six rounds: no interval"
    lo, hi, _ = interval
    if (hi <= target) if bound else (lo >= target):
        return "met"
    if (lo > target) if bound else (hi < target):
        return "missed"
    return "not settled (the target is inside the interval)"


def line(v, target, bound=False):
    ci = median_interval(v)
    span = "" if ci is None else ", median within %.3f–%.3f (%.1f %%)" % (ci[0], ci[1], 100 * ci[2])
    on_side = sum((x <= target) if bound else (x >= target) for x in v)
    side = "at or below" if bound else "at or above"
    return "%3d rounds, median %.4f%s, %d %s %.2f: %s" % (
        len(v), quantile(v, 0.5), span, on_side, side, target, verdict(ci, target, bound))


def main(paths):
    if not paths:
        sys.exit(__doc__)
    runs = []
    for p in paths:
        try:
            with open(p) as f:
                runs.append((p, json.load(f)))
        except (OSError, ValueError) as e:
            sys.exit(f"{p}: {e}")
    for key, what, target, bound in [r + (False,) for r in RATIOS] + [b + (True,) for b in BOUNDS]:
        pooled = []
        print(f"{what} (target {'<=' if bound else '>='} {target:.2f}):")
        for p, d in runs:
            v = [x for x in d.get(key) or [] if isinstance(x, (int, float))]
            if v:
                print(f"  {p}: {line(v, target, bound)}")
            pooled += v
        if pooled:
            print(f"  pooled: {line(pooled, target, bound)}")


if __name__ == "__main__":
    main(sys.argv[1:])
