"""README.md's benchmark tables are the ones scripts/readme_tables.py writes from bench/results.json."""
import copy
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "scripts" / "readme_tables.py")
readme_tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(readme_tables)


def committed():
    return json.loads(readme_tables.RESULTS.read_text())


def test_readme_tables_match_the_committed_json():
    text = readme_tables.README.read_text()
    assert readme_tables.replace_between_markers(text, readme_tables.tables(committed())) == text, (
        "README.md's benchmark tables differ from bench/results.json: run python scripts/readme_tables.py")


def test_every_section_case_and_figure_of_the_json_is_in_the_readme():
    data = committed()
    text = readme_tables.README.read_text()
    body = text[text.index(readme_tables.START):text.index(readme_tables.END)]
    assert f"**{data['machine']['cpu_model']}**" in body
    for case in data["cases"]:
        assert f"**{case['section']}**" in body
        table = _section_table(body, case["section"])     # a case name may stand in two sections
        row = next(line for line in table.splitlines() if line.startswith(f"| {case['case']} |"))
        assert row.endswith(f"| {case['verdict']} |")
        for r in data["results"]:
            if r["section"] == case["section"] and r["case"] == case["case"] and r["label"] != "ceiling":
                assert readme_tables.fmt_ms(r["median_ms"]) in row


def _section_table(body, section):
    """The lines of ``body`` from the section's bold title to the next section's."""
    start = body.index(f"**{section}**")
    end = body.find("\n**", start + 1)
    return body[start:end if end != -1 else len(body)]


def fake_result(section, case, label, ms, noisy=False):
    return {"section": section, "case": case, "label": label, "median_ms": ms, "noisy": noisy}


def test_a_new_section_gets_its_own_table():
    data = copy.deepcopy(committed())
    data["cases"].append({"section": "matmul", "case": "512x512x512", "verdict": "convkit fastest (1.10x NumPy)",
                          "ceiling_fraction": 1.2, "above_ceiling": True})
    data["results"] += [fake_result("matmul", "512x512x512", "convkit", 1.234),
                        fake_result("matmul", "512x512x512", "numpy", 1.3574, noisy=True),
                        fake_result("matmul", "512x512x512", "ceiling", 1.5)]
    table = readme_tables.tables(data).split("**matmul**")[1]
    assert "| case | convkit ms | numpy ms | of GEMM ceiling | verdict |" in table
    assert "| 512x512x512 | 1.23 | 1.36* | 120% (above!) | convkit fastest (1.10x NumPy) |" in table


def test_auto_columns_say_what_auto_chose():
    data = {"cases": [{"section": "s", "case": "c", "verdict": "v", "ceiling_fraction": None,
                       "above_ceiling": False}],
            "results": [fake_result("s", "c", "direct", 0.0123), fake_result("s", "c", "auto=direct", 123.4)]}
    table = readme_tables.section_table("s", data["cases"], data["results"])
    assert table.splitlines()[2:] == ["| case | direct ms | auto ms | verdict |", "|---|---|---|---|",
                                      "| c | 0.012 | 123 (direct) | v |"]


def test_markers_are_required(tmp_path):
    with pytest.raises(SystemExit):
        readme_tables.replace_between_markers("no markers here", "body")
    readme = tmp_path / "README.md"
    readme.write_text(f"a\n{readme_tables.START}\nold\n{readme_tables.END}\nb\n")
    readme_tables.main(["--readme", str(readme)])
    assert readme.read_text().startswith(f"a\n{readme_tables.START}\nMeasured on ")
    readme_tables.main(["--readme", str(readme), "--check"])
