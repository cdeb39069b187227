"""Compare two ``python -m convkit bench --json`` runs case by case (e.g. 1 thread against 2).

    python -m convkit bench --quick --only conv2d --threads 1 --json one.json
    python -m convkit bench --quick --only conv2d --threads 2 --json two.json
    python bench/compare.py one.json two.json

Prints, for every case and convkit algorithm present in both, the first run's median time over the
second's: how many times faster the second run is.
"""
import json
import sys


def load(path):
    with open(path) as f:
        data = json.load(f)
    return data, {(r["section"], r["case"], r["label"].split("=")[0]): r for r in data["results"]}


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__)
    (first, a), (second, b) = load(argv[0]), load(argv[1])
    print(f"{argv[0]} ({first['threads']} thread(s)) vs {argv[1]} ({second['threads']} thread(s)): "
          "time ratio first/second")
    for key in a:
        if key in b and a[key]["ours"]:
            section, case, label = key
            ratio = a[key]["median_ms"] / b[key]["median_ms"]
            print(f"{section:<12} {case:<40} {label:<8} {ratio:6.2f}x")


if __name__ == "__main__":
    main(sys.argv[1:])
