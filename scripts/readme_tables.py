"""Write README.md's benchmark tables from committed benchmark JSON, so that its figures cannot drift.

    python scripts/readme_tables.py            # README.md tables <- bench/results.json
    python scripts/readme_tables.py --bench    # first run the full benchmark (a few minutes on a quiet
                                               # machine): bench/results.json, .txt and .png, then the tables
    python scripts/readme_tables.py --check    # exit 1 if README.md's tables differ from the JSON

The tables go between the markers ``<!-- bench-tables:start -->`` and ``<!-- bench-tables:end -->``:
one table per section of the JSON (so sections added later appear by themselves), one row per case, one
column per candidate (median ms over the interleaved rounds), the share of the GEMM ceiling where the
section has one, and the harness's verdict.  The line above them names the machine as ``lscpu`` does,
the build's ISA, the threads and the command.  tests/test_readme_tables.py checks README.md against the
committed JSON.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RESULTS = ROOT / "bench" / "results.json"
START, END = "<!-- bench-tables:start -->", "<!-- bench-tables:end -->"
CEILING = "ceiling"


def fmt_ms(ms):
    """Three significant figures, never in exponent form."""
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    if ms >= 1:
        return f"{ms:.2f}"
    return f"{ms:.3f}"


def header(data):
    m = data["machine"]
    peers = ", ".join(f"{name} {version}" for name, version in m["packages"].items()
                      if version and name in ("torch", "torchvision", "onnxruntime", "dask"))
    blas = "; ".join(f"{b['internal_api']} {b['version']} ({b['architecture']})" for b in m["blas"]) \
        or m["build"].get("blas", "?")
    load = m.get("load_average")
    busy = "" if load is None else f", load average {load:.1f} when it started"
    return (f"Measured on **{m['cpu_model']}** ({m['cores']} cores{busy}, {m['build_isa']} build, "
            f"`{m['build']['compile_args']}`), {data['threads']} thread(s), {data['dtype']} {data['layout']}, "
            f"{data['date'][:10]}, with `{data['command']}`; "
            f"{data['rounds']} interleaved rounds per case; NumPy {m['numpy']}, BLAS {blas}"
            + (f"; peers: {peers}" if peers else "; no peer installed") + ". "
            f"Times are medians over rounds in ms; `*` marks a row whose per-round ratio spread exceeds "
            f"{data['noisy_spread']:.0%}; ratios in the verdicts are the peer's time over convkit's fastest "
            f"(above 1, convkit is faster).")


def section_table(section, cases, results):
    """One markdown table: a row per case, a column per candidate label (``auto=x`` under ``auto``)."""
    rows = [r for r in results if r["section"] == section and r["label"] != CEILING]
    columns = list(dict.fromkeys(r["label"].split("=")[0] for r in rows))
    with_ceiling = any(c["ceiling_fraction"] is not None for c in cases)
    head = ["case"] + [f"{c} ms" for c in columns] + (["of GEMM ceiling"] if with_ceiling else []) + ["verdict"]
    lines = [f"**{section}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for case in cases:
        cells = {}
        for r in (r for r in rows if r["case"] == case["case"]):
            base, _, chosen = r["label"].partition("=")
            cells[base] = fmt_ms(r["median_ms"]) + (f" ({chosen})" if chosen else "") + ("*" if r["noisy"] else "")
        row = [case["case"]] + [cells.get(c, "") for c in columns]
        if with_ceiling:
            fraction = case["ceiling_fraction"]
            row.append("" if fraction is None else f"{fraction:.0%}" + (" (above!)" if case["above_ceiling"] else ""))
        lines.append("| " + " | ".join(row + [case["verdict"]]) + " |")
    return "\n".join(lines)


def tables(data):
    """The markdown that goes between the markers."""
    sections = list(dict.fromkeys(c["section"] for c in data["cases"]))
    parts = [header(data)]
    for section in sections:
        cases = [c for c in data["cases"] if c["section"] == section]
        parts.append(section_table(section, cases, data["results"]))
    return "\n\n".join(parts)


def replace_between_markers(text, body):
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise SystemExit(f"README.md needs exactly one {START} ... {END} pair")
    before, rest = text.split(START)
    _, after = rest.split(END)
    return f"{before}{START}\n{body}\n{END}{after}"


def run_bench(results):
    """The full benchmark, its table to bench/results.txt, its JSON and plot beside it."""
    command = [sys.executable, "-m", "convkit", "bench", "--json", os.path.relpath(results, ROOT),
               "--plot", os.path.relpath(results.with_suffix(".png"), ROOT)]
    print("running: " + " ".join(["python"] + command[1:]), file=sys.stderr)
    out = subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True).stdout
    results.with_suffix(".txt").write_text(out)
    print(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=RESULTS, help="benchmark JSON (default bench/results.json)")
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument("--bench", action="store_true", help="run the full benchmark first (writes --json)")
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if the README differs")
    args = parser.parse_args(argv)
    if args.bench:
        run_bench(args.json.resolve())
    data = json.loads(args.json.read_text())
    text = args.readme.read_text()
    new = replace_between_markers(text, tables(data))
    if args.check:
        if new != text:
            sys.exit(f"{args.readme}: the benchmark tables differ from {args.json}; "
                     "run python scripts/readme_tables.py")
        return
    args.readme.write_text(new)
    print(f"{args.readme}: tables written from {args.json}")


if __name__ == "__main__":
    main()
