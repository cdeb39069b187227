"""Command line: ``python -m convkit bench|demo|draw|train-digits|config`` (also the console script
``convkit``)."""
import argparse
import sys


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    commands = {"bench": "compare convkit's algorithms with each other and with PyTorch/NumPy",
                "demo": "build resnet18 and mobilenet_v2, print their summaries, time a forward pass",
                "draw": "pictures of the convolution arithmetic (PNG and animated GIF)",
                "train-digits": "train a small CNN on scikit-learn's 8x8 digits (needs scikit-learn)",
                "config": "print how convkit was built"}
    if not argv or argv[0] not in commands:
        parser = argparse.ArgumentParser(prog="python -m convkit")
        parser.add_argument("command", choices=list(commands),
                            help="; ".join(f"{k}: {v}" for k, v in commands.items()))
        parser.parse_args(argv[:1])
    command, rest = argv[0], argv[1:]
    if command == "bench":
        from .bench.cli import main as bench_main
        bench_main(rest)
    elif command == "draw":
        from .draw import main as draw_main
        draw_main(rest)
    elif command == "demo":
        from .demo import main as demo_main
        demo_main(rest)
    elif command == "train-digits":
        from .train_digits import main as train_digits_main
        return train_digits_main(rest)
    else:
        import convkit
        convkit.show_config()


if __name__ == "__main__":
    main()
