"""The benchmark harness (convkit/bench/core.py, cli.py): interleaving, ratios, verdicts, CLI, JSON, plot.

Timing is not tested here (speed is shown by the benchmark); the harness's bookkeeping is, with fake
candidates and hand-made samples.
"""
import json

import numpy as np
import pytest

from convkit.bench import cli, core, machine


class FakeClock:
    """Advances by ``step`` seconds each time it is read: deterministic blocks."""

    def __init__(self, step=0.01):
        self.now, self.step = 0.0, step

    def __call__(self):
        self.now += self.step
        return self.now


def test_rounds_interleave_candidates_each_block_after_warm_up():
    calls = []
    fns = [lambda name=name: calls.append(name) for name in "ABC"]
    samples = core.time_interleaved(fns, rounds=3, warmup_seconds=0.03, block_seconds=0.05, clock=FakeClock())
    runs = [name for i, name in enumerate(calls) if i == 0 or calls[i - 1] != name]
    assert runs == list("ABC") * 3
    assert [len(s) for s in samples] == [3, 3, 3]
    per_block = len(calls) // 9
    assert all(len(block) < per_block for s in samples for block in s), "warm-up calls are not timed"


def test_block_times_at_least_one_call_after_at_least_one_warm_up_call():
    calls = []
    times = core.run_block(lambda: calls.append(1), 0.0, 0.0, clock=FakeClock())
    assert len(times) == 1 and len(calls) == 2


def result(label, round_ms, ours=True, reference=False):
    return core.Result("s", "c", label, ours, reference, float(np.median(round_ms)), None, None, None,
                       len(round_ms), [[t] for t in round_ms])


def test_ratio_is_median_of_per_round_ratios_not_ratio_of_medians():
    ours = result("direct", [1.0, 3.0, 2.0])
    peer = result("torch", [2.0, 2.0, 5.0], ours=False)
    core.summarize_case("s", "c", [ours, peer])
    assert peer.ratio == pytest.approx(2.0)          # rounds: 2/1, 2/3, 5/2 -> median 2
    assert ours.ratio == 1.0 and ours.ratio_spread == 0.0


def test_drifting_machine_gives_steady_ratios():
    drift = [1.0, 1.7, 1.2, 1.5, 1.0]                 # the whole machine slows and recovers
    ours = result("direct", [1.0 * d for d in drift])
    peer = result("torch", [1.2 * d for d in drift], ours=False)
    case = core.summarize_case("s", "c", [ours, peer])
    assert peer.ratio == pytest.approx(1.2) and peer.ratio_spread == pytest.approx(0.0)
    assert case.verdict == "convkit fastest (1.20x PyTorch)"


@pytest.mark.parametrize("peer_ms, words", [
    ([1.2, 1.25, 1.3, 1.2, 1.2], "convkit fastest (1.20x PyTorch)"),
    ([0.87, 0.86, 0.88, 0.87, 0.87], "0.87x PyTorch (PyTorch faster)"),
    ([0.9, 1.1, 1.0, 0.95, 1.05], "level with PyTorch (1.00x, within the rounds' spread)"),
])
def test_verdict_words_say_what_happened(peer_ms, words):
    ours = result("direct", [1.0] * 5)
    case = core.summarize_case("s", "c", [ours, result("torch", peer_ms, ours=False)])
    assert case.verdict == words


def test_verdict_without_peer_and_with_reference_only():
    assert core.summarize_case("s", "c", [result("convkit", [1.0, 1.0])]).verdict == "no peer"
    copy = result("copy", [0.5, 0.5], ours=False, reference=True)
    assert core.summarize_case("s", "c", [result("convkit", [1.0, 1.0]), copy]).verdict == "no peer"
    assert "reference only" in core.summarize_case("s", "c", [copy]).verdict


def test_fastest_of_ours_names_the_others_relative_times():
    case = core.summarize_case("s", "c", [result("direct", [2.0] * 3), result("im2col", [5.0] * 3)])
    assert case.verdict.startswith("direct fastest of convkit's (im2col takes 2.50x)")


def test_kernel_above_ceiling_is_flagged():
    ours = result("direct", [1.0] * 3)
    ceiling = result(core.CEILING_LABEL, [10.0] * 3, ours=False, reference=True)
    # ours: 100 flops in 1 ms; ceiling: 800 flops in 10 ms -> ours runs at 1.25x the ceiling's rate
    case = core.summarize_case("s", "c", [ours, ceiling], ceiling_flops=800.0, flops=100.0)
    assert case.above_ceiling and case.ceiling_fraction == pytest.approx(1.25)
    assert "ABOVE the GEMM ceiling (125%" in case.verdict
    ceiling = result(core.CEILING_LABEL, [5.0] * 3, ours=False, reference=True)
    case = core.summarize_case("s", "c", [result("direct", [1.0] * 3), ceiling], ceiling_flops=800.0, flops=100.0)
    assert not case.above_ceiling and case.verdict.endswith("62% of the GEMM ceiling")


def test_noisy_rows_are_marked():
    ours = result("direct", [1.0] * 5)
    peer = result("torch", [1.0, 1.5, 2.0, 1.2, 1.8], ours=False)
    case = core.summarize_case("s", "c", [ours, peer])
    assert peer.noisy and not ours.noisy
    table = core.format_table([case])
    assert "*" in [line for line in table.splitlines() if "torch" in line][0]
    assert "spread above 10%" in table


def test_every_section_is_listed_and_every_case_belongs_to_one():
    sections = core.sections()
    assert {"conv2d", "depthwise", "grouped", "transposed", "units", "deformable", "models"} <= set(sections)
    cases = core.load_cases(core.Config(quick=True))   # raises if a case names a section its module lacks
    assert {c.section for c in cases} <= set(sections)
    assert {c.section for c in core.load_cases(core.Config(quick=True), {"units"})} == {"units"}


def test_help_lists_every_section(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in core.sections():
        assert f"\n  {name} " in out


def test_unknown_section_lists_the_valid_ones(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--only", "conv3d"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "conv3d" in err and all(name in err for name in core.sections())


@pytest.fixture
def tiny_bench(monkeypatch):
    """The CLI on one fake case of cheap candidates, two short rounds."""
    monkeypatch.setattr(core.Config, "rounds", property(lambda self: 2))
    monkeypatch.setattr(core.Config, "warmup_seconds", property(lambda self: 0.0))
    monkeypatch.setattr(core.Config, "block_seconds", property(lambda self: 0.001))
    monkeypatch.setattr(cli, "torch_module", lambda: None)
    a = np.ones((64, 64), np.float32)

    def make(config):
        return [core.Candidate("ours", lambda: a + a), core.Candidate("numpy", lambda: a * 2, ours=False)]

    monkeypatch.setattr(core, "load_cases", lambda config, only=None: [core.Case("conv2d", "tiny", make,
                                                                                 flops=2.0 * a.size)])


def test_json_holds_every_sample_and_the_machine(tiny_bench, tmp_path, capsys):
    path = tmp_path / "bench.json"
    cli.main(["--quick", "--threads", "1", "--json", str(path)])
    assert "tiny" in capsys.readouterr().out
    data = json.loads(path.read_text())
    assert data["command"] == f"python -m convkit bench --quick --threads 1 --json {path}"
    labels = [r["label"] for r in data["results"]]
    assert labels == ["ours", "numpy", core.CEILING_LABEL]
    for r in data["results"]:
        assert len(r["samples_ms"]) == 2 and all(len(block) >= 1 for block in r["samples_ms"])
        assert r["median_ms"] == pytest.approx(float(np.median([np.median(b) for b in r["samples_ms"]])))
    facts = data["machine"]
    assert facts["cpu_model"] == machine.cpu_model()
    assert facts["build_isa"] in {"AVX-512", "AVX2", "AVX", "SVE", "NEON", "SSE2", "scalar", "unknown"}
    if facts["build_isa"] == "AVX-512":
        assert "avx512f" in facts["cpu_isa_flags"]
    assert facts["numpy"] == np.__version__
    assert {"compiler", "caches", "os", "blas", "packages", "cores"} <= set(facts)
    assert data["cases"][0]["verdict"] == data["cases"][0]["verdict"].strip() != ""


def test_plot_writes_a_png_with_title(tiny_bench, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "bench.png"
    cli.main(["--quick", "--threads", "1", "--plot", str(path)])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = pytest.importorskip("PIL.Image")
    with image.open(path) as im:
        assert im.size[0] > 500 and im.size[1] > 200
