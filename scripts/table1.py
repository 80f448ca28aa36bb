#!/usr/bin/env python3
"""The paper's Table 1 beside this engine's, from a `mintjulep bench` folder.

Usage: scripts/table1.py BENCH_DIR   (e.g. the output of
       mintjulep bench configs/table1.toml --jobs 2 --threads 1 --out BENCH_DIR)

Prints two Markdown tables: the ESS of every method and system (mean +- sd over the seeds done,
with the sample count and the paper's number beside it), and log Z with the energy and
interatomic-distance W2 against the md references. Reads BENCH_DIR/results.json only.
"""
import json
import math
import sys

# The paper's Table 1 (ESS %, 1e5 samples; LJ in the sum-over-i<j convention, `-half` here).
PAPER = {
    "pis": {"dw4": "46.2 +- 8.1", "lj13-half": "1.2 +- 1.1", "lj55-half": "0.1 +- 0.0"},
    "dds": {"dw4": "46.1 +- 7.6", "lj13-half": "1.0 +- 1.1", "lj55-half": "0.1 +- 0.0"},
    "julep": {"dw4": "83.7 +- 1.0", "lj13-half": "10.6 +- 1.4", "lj55-half": "1.0 +- 0.6"},
}
ROWS = [
    ("pis", "PIS (isotropic narrow prior, additive kernel, reverse KL)"),
    ("dds", "DDS (isotropic prior, additive kernel, log-variance)"),
    ("julep", "MintJulep: the paper's trained kernel on the best prior"),
    ("prior", "the best prior alone (configs/SYSTEM.toml)"),
    ("ais-mala", "**the best configuration: that prior + MALA-AIS**"),
]
COLUMNS = [
    ("dw4", "DW-4"),
    ("lj13-half", "LJ-13 (i<j, paper's)"),
    ("lj13", "LJ-13 (ordered pairs)"),
    ("lj55-half", "LJ-55 (i<j, paper's)"),
    ("lj55", "LJ-55 (ordered pairs)"),
]


def stats(values):
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, sd


def digits(value):
    return 2 if abs(value) < 1000 else 1


def print_row(name, per_column, text):
    """One table row: text(cells) for each column's finished cells, '-' where there are none."""
    print(f"| {name} | " + " | ".join(text(done) if done else "-" for done in per_column) + " |")


def log_z_text(done):
    mean, sd = stats([c["log_z"] for c in done])
    text = f"{mean:.{digits(mean)}f} +- {sd:.{digits(mean)}f}"
    if done[0].get("energy_w2") is not None:
        w2, _ = stats([c["energy_w2"] for c in done])
        dw2, _ = stats([c["distance_w2"] for c in done])
        text += f" / {w2:.3g} / {dw2:.3g}"
    return text


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    results = json.load(open(sys.argv[1] + "/results.json"))
    cells = {}
    for c in results["cells"]:
        if c.get("status") == "done":
            cells.setdefault((c["method"], c["system"]), []).append(c)
    systems = {s["name"]: s for s in results["systems"]}
    columns = [(k, name) for k, name in COLUMNS if k in systems]
    rows = [(k, name) for k, name in ROWS if k in results["methods"]]
    seeds = len(results["seeds"])

    def ess_text(done):
        mean, sd = stats([100 * c["ess"] for c in done])
        partial = f", {len(done)}/{seeds} seeds" if len(done) < seeds else ""
        return f"{mean:.2f} +- {sd:.2f} [{done[0]['num_samples']}{partial}]"

    print("ESS (%), mean +- sd over the seeds [samples per seed]; the paper's (1e5 samples) in italics:\n")
    print("| method | " + " | ".join(name for _, name in columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for method, name in rows:
        if method in PAPER:
            paper = [f"*{PAPER[method][k]}*" if k in PAPER[method] else "" for k, _ in columns]
            print(f"| {name.split(' (')[0].split(':')[0]}, paper | " + " | ".join(paper) + " |")
        print_row(name, [cells.get((method, k), []) for k, _ in columns], ess_text)

    print("\nlog Z (mean +- sd over the seeds) / energy W2 (kT) / distance W2 against the md reference:\n")
    print("| method | " + " | ".join(name for _, name in columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for method, name in rows:
        print_row(name, [cells.get((method, k), []) for k, _ in columns], log_z_text)


if __name__ == "__main__":
    main()
