"""``python -m convkit train-digits``: train a small CNN on scikit-learn's 8x8 digits with convkit alone.

The network is conv-BN-ReLU-maxpool twice, then a linear classifier; it trains with SGD (momentum) on
cross-entropy, holding out 20% of the 1,797 images (stratified) for testing.  Everything is seeded:
the split, the initial weights and the order of the batches, so the same seed and thread count give
the same run.  Needs scikit-learn (``pip install 'convkit[examples]'``); ``--plot`` needs matplotlib.
"""
import argparse
import sys
import time

import numpy as np

import convkit
from . import _threads, grad, nn
from .nn.init import generator
from .optim import SGD
from .softmax import cross_entropy


def load_digits_split(seed=0, test_fraction=0.2):
    """(x_train, y_train, x_test, y_test): NHWC float32 images (N, 8, 8, 1) scaled to [0, 1], int labels;
    a stratified split of scikit-learn's digits."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        sys.exit("train-digits needs scikit-learn: pip install scikit-learn (or 'convkit[examples]')")
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=test_fraction, stratify=digits.target, random_state=seed)
    return x_train, y_train.astype(np.intp), x_test, y_test.astype(np.intp)


def digits_cnn(rng=0):
    """8x8x1 -> conv3x3(16)-BN-ReLU-maxpool -> 4x4x16 -> conv3x3(32)-BN-ReLU-maxpool -> 2x2x32 -> linear(10)."""
    rng = generator(rng)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False, rng=rng), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, bias=False, rng=rng), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(2 * 2 * 32, 10, rng=rng))


def accuracy(model, x, y, batch_size=512):
    """Fraction of ``x`` classified as ``y`` (evaluation mode: batch norm folded)."""
    model.eval()
    correct = sum(int((model(x[i:i + batch_size]).argmax(axis=1) == y[i:i + batch_size]).sum())
                  for i in range(0, len(x), batch_size))
    return correct / max(len(x), 1)


def train(epochs=12, batch_size=32, lr=0.05, momentum=0.9, weight_decay=1e-4, seed=0, progress=None):
    """Train :func:`digits_cnn` with SGD, the learning rate decayed from ``lr`` along a half cosine; return
    (model, history) with per-epoch ``loss`` (mean training loss), ``test_accuracy`` and ``seconds``
    (cumulative).  ``progress(epoch, done, total)`` is called after each batch, then
    ``progress(epoch, None, history)`` after each epoch."""
    x_train, y_train, x_test, y_test = load_digits_split(seed)
    rng = np.random.default_rng(seed)
    model = digits_cnn(rng)
    opt = SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    history = {"loss": [], "test_accuracy": [], "seconds": []}
    start = time.perf_counter()
    n = len(x_train)
    batches = (n + batch_size - 1) // batch_size
    for epoch in range(epochs):
        opt.lr = lr * 0.5 * (1 + np.cos(np.pi * epoch / epochs))  # cosine decay: settles at the end
        model.train()
        order = rng.permutation(n)
        total = 0.0
        for b in range(batches):
            idx = order[b * batch_size:(b + 1) * batch_size]
            x, y = x_train[idx], y_train[idx]
            opt.zero_grad()
            logits = model(x)
            total += float(cross_entropy(logits, y, reduction="sum"))
            model.backward(grad.cross_entropy(logits, y), input_grad=False)
            opt.step()
            if progress:
                progress(epoch, b + 1, batches)
        history["loss"].append(total / n)
        history["test_accuracy"].append(accuracy(model, x_test, y_test))
        history["seconds"].append(time.perf_counter() - start)
        if progress:
            progress(epoch, None, history)
    return model, history


class ProgressBar:
    """One line per epoch: a bar filled batch by batch (redrawn in place on a terminal), then the
    epoch's training loss and test accuracy."""

    def __init__(self, epochs, stream=None, width=30):
        self.epochs, self.width = epochs, width
        self.stream = sys.stdout if stream is None else stream
        self.live = self.stream.isatty()

    def __call__(self, epoch, done, total):
        head = f"epoch {epoch + 1:>{len(str(self.epochs))}}/{self.epochs} "
        if done is not None:
            if self.live:
                filled = self.width * done // total
                self.stream.write(f"\r{head}[{'#' * filled}{'.' * (self.width - filled)}] {done}/{total}")
                self.stream.flush()
            return
        history = total
        self.stream.write(f"\r{head}[{'#' * self.width}] loss {history['loss'][-1]:.4f}  test accuracy "
                          f"{100 * history['test_accuracy'][-1]:.2f}%  {history['seconds'][-1]:.1f} s\n")
        self.stream.flush()


def plot(history, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, history["loss"], marker="o")
    ax_loss.set(xlabel="epoch", ylabel="training loss (cross-entropy)", yscale="log", title="loss")
    ax_acc.plot(epochs, 100 * np.asarray(history["test_accuracy"]), marker="o", color="tab:green")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy (%)", title="held-out 20% of the digits")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    fig.suptitle("convkit: a small CNN trained on scikit-learn's 8x8 digits")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m convkit train-digits", description=__doc__)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.05, help="initial SGD learning rate (cosine decay)")
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0, help="split, initial weights and batch order")
    parser.add_argument("--threads", type=int, default=1,
                        help="OpenMP threads (default 1: the tensors are tiny, batches of 8x8 maps, and "
                             "waking a second thread for each layer costs more than it saves)")
    parser.add_argument("--plot", metavar="PATH", help="write the loss and accuracy curves as a PNG")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1:
        parser.error("--epochs and --batch-size must be at least 1")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("--plot needs matplotlib: pip install matplotlib (or 'convkit[examples]')")
    start = time.perf_counter()
    previous_threads = _threads._default
    convkit.set_num_threads(args.threads)
    try:
        print(f"training a small CNN on scikit-learn's digits (80% train, 20% test, seed {args.seed}), "
              f"{convkit.get_num_threads()} thread(s)")
        _, history = train(args.epochs, args.batch_size, args.lr, args.momentum, args.weight_decay,
                           args.seed, progress=ProgressBar(args.epochs))
    finally:
        convkit.set_num_threads(previous_threads)
    print(f"test accuracy {100 * history['test_accuracy'][-1]:.2f}% after {args.epochs} epochs: "
          f"{history['seconds'][-1]:.1f} s of training, {time.perf_counter() - start:.1f} s with loading")
    if args.plot:
        plot(history, args.plot)
        print(f"wrote {args.plot}")
    return history
