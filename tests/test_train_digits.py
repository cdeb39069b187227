"""``python -m convkit train-digits``: a short run (the full one reaches >= 97% test accuracy)."""
import numpy as np
import pytest

pytest.importorskip("sklearn")
from convkit import train_digits  # noqa: E402
from convkit.__main__ import main  # noqa: E402


def test_split_is_stratified_and_seeded():
    x_train, y_train, x_test, y_test = train_digits.load_digits_split(seed=0)
    assert x_train.shape == (1437, 8, 8, 1) and x_test.shape == (360, 8, 8, 1)
    assert x_train.dtype == np.float32 and 0 <= x_train.min() and x_train.max() <= 1
    assert np.abs(np.bincount(y_test, minlength=10) - 36).max() <= 1     # every digit ~20% held out
    again = train_digits.load_digits_split(seed=0)
    assert np.array_equal(again[1], y_train) and np.array_equal(again[0], x_train)


def test_short_run_learns_and_is_repeatable(capsys):
    history = main(["train-digits", "--epochs", "2"])
    out = capsys.readouterr().out
    assert out.count("epoch ") == 2 and "test accuracy" in out
    assert history["loss"][1] < history["loss"][0] < 1.0
    assert history["test_accuracy"][-1] >= 0.9
    again = main(["train-digits", "--epochs", "2"])          # same seed and thread count: same bits
    assert again["loss"] == history["loss"] and again["test_accuracy"] == history["test_accuracy"]


def test_plot_writes_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "curves.png"
    main(["train-digits", "--epochs", "1", "--plot", str(path)])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_arguments_exit_with_usage(capsys):
    with pytest.raises(SystemExit):
        main(["train-digits", "--epochs", "0"])
    assert "--epochs and --batch-size must be at least 1" in capsys.readouterr().err
