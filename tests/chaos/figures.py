"""``python -m tests.chaos.figures FIGURES.jsonl``: the campaign figures (``--json`` lines) as Markdown tables for
bench/README.md: one row per run, then recovery times per fault kind and store, pooled over the runs."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from typing import Any

from tests.chaos.checker import percentile


def tables(runs: list[dict[str, Any]]) -> str:
    out = [
        "| store | seed | faults for | faults injected | fences ok / failed | violations | availability "
        "(per group) | all groups once after the faults stopped |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in runs:
        faults = ", ".join(f"{k} {v}" for k, v in sorted(r["faults"].items()))
        if r.get("jumps"):
            faults += f" ({r['jumps']} clock jumps applied, group clocks off by up to {r['skew']:.0f} s)"
        total = sum(r["faults"].values())
        avail = ", ".join(f"{a:.3f}" for _, a in sorted(r["availability"].items()))
        settle = "never" if r["settle"] is None else f"{r['settle']:.1f} s"
        out.append(f"| {r['store']} | {r['seed']} | {r['duration']:g} s | {total}: {faults} | "
                   f"{r['fences'].get('ok', 0)} / {r['fences'].get('failed', 0)} | {len(r['violations'])} | "
                   f"{avail} | {settle} |")
    pooled: dict[tuple[str, str], list[float]] = defaultdict(list)
    censored: dict[tuple[str, str], int] = defaultdict(int)
    for r in runs:
        for kind, values in r["recovery"].items():
            pooled[(r["store"], kind)] += values
        for kind, n in r["censored"].items():
            censored[(r["store"], kind)] += n
    out += [
        "",
        "| store | fault kind | n | recovery median | recovery p99 | max |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for (store, kind), values in sorted(pooled.items()):
        extra = f" (+{censored[(store, kind)]} open at the end)" if censored[(store, kind)] else ""
        out.append(f"| {store} | {kind} | {len(values)}{extra} | {percentile(values, 50):.2f} s | "
                   f"{percentile(values, 99):.2f} s | {max(values):.2f} s |")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    runs = []
    for path in argv[1:]:
        with open(path) as fh:
            runs += [json.loads(line) for line in fh if line.strip()]
    print(tables(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
