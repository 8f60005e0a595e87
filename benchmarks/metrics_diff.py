"""Quantiles of the server's histograms between two `/metrics` scrapes.

Load runs start with a ramp (sockets connecting); scraping `/metrics` once the ramp is
over and again at the end, then diffing, gives the server's own view of the steady
state only:

    .venv/bin/python -m benchmarks.metrics_diff /tmp/ramp.txt /tmp/end.txt

Quantiles are interpolated linearly inside a bucket, as Prometheus' histogram_quantile
does, so they are estimates bounded by the bucket edges (printed too). Then it prints the
machine's speed reference, measured there and then (`--skip-bare`: not): the README's
load test has no other, and one read before a run does not tell what the run met (on a
slow day, 68,643 frames/s before a run and 49,468 right after it, BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import asyncio
from collections import defaultdict

from prometheus_client.parser import text_string_to_metric_families

from benchmarks.bench_gateway import bare_reference

HISTOGRAMS = (
    "zendo_dispatch_first_offer_seconds",
    "zendo_dispatch_accept_notify_seconds",
    "zendo_event_loop_lag_seconds",
    "zendo_gc_pause_seconds",
    "zendo_ws_hello_seconds",
)
Series = dict[tuple[str, tuple[tuple[str, str], ...]], dict[float, float]]


def _buckets(path: str) -> Series:
    with open(path) as fh:
        return buckets_of(fh.read())


def buckets_of(text: str) -> Series:
    """The histograms' cumulative buckets in a `/metrics` text."""
    out: Series = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        if family.name not in HISTOGRAMS:
            continue
        for sample in family.samples:
            if not sample.name.endswith("_bucket"):
                continue
            labels = {k: v for k, v in sample.labels.items() if k != "le"}
            key = (family.name, tuple(sorted(labels.items())))
            out[key][float(sample.labels["le"])] = sample.value
    return out


def quantile(buckets: dict[float, float], q: float) -> tuple[float, float, float]:
    """(estimate, lower edge, upper edge) of quantile q of cumulative `buckets`."""
    edges = sorted(buckets)
    total = buckets[edges[-1]]
    rank = q * total
    lower, below = 0.0, 0.0
    for edge in edges:
        count = buckets[edge]
        if count >= rank:
            if edge == float("inf"):
                return lower, lower, edge
            inside = count - below
            share = (rank - below) / inside if inside else 1.0
            return lower + (edge - lower) * share, lower, edge
        lower, below = edge, count
    return lower, lower, float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", help="/metrics scraped at the start of the window")
    parser.add_argument("after", help="/metrics scraped at its end")
    parser.add_argument(
        "--skip-bare", action="store_true", help="do not measure the speed reference (8 s)"
    )
    args = parser.parse_args()
    scrapes = []
    for path in (args.before, args.after):
        try:
            scrapes.append(_buckets(path))
        except OSError as exc:
            parser.error(f"cannot read {path}: {exc.strerror}")
        except ValueError as exc:
            parser.error(f"{path} is not a /metrics scrape: {exc}")
    for line in report(*scrapes):
        print(line)
    if not args.skip_bare:
        frames = asyncio.run(bare_reference())
        print(f"speed reference (bare aiohttp loop, now): {frames:,.0f} frames/s")


def report(before: Series, after: Series) -> list[str]:
    """One line per histogram: its quantiles over the window between the scrapes."""
    lines = []
    for key in sorted(after):
        name, labels = key
        diff = {le: n - before.get(key, {}).get(le, 0.0) for le, n in after[key].items()}
        total = diff[float("inf")]
        label = ",".join(f"{k}={v}" for k, v in labels)
        head = f"{name}{{{label}}}" if label else name
        if not total:
            lines.append(f"{head}: no observations")
            continue
        cells = []
        for q in (0.5, 0.9, 0.99, 0.999):
            est, lo, hi = quantile(diff, q)
            cells.append(f"p{q * 100:g} ≈ {est * 1e3:.1f} ms ({lo * 1e3:g}–{hi * 1e3:g})")
        over = total - diff.get(0.025, total)
        lines.append(f"{head}: n={total:.0f}; " + "; ".join(cells) + f"; > 25 ms: {over:.0f}")
    return lines


if __name__ == "__main__":
    main()
