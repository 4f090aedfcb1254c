"""Command line: ``python -m skmtl demo``."""

import argparse
import os
import sys
import tempfile

DEMO = ("fit MMoE on Census-Income beside single-task models, gradient boosting and the "
        "rest of the model family, ESMM and AITM on Coat, export MMoE to ONNX; print the "
        "results and save plots (about a minute)")


def _seed(text):
    """A ``--random-state``: an integer in [0, 2**32 - 1], as NumPy's seeds."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be between 0 and 2**32 - 1; got {value}")
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m skmtl", description="skmtl's command line: the demo.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help=DEMO, description=DEMO[0].upper() + DEMO[1:] + ".")
    demo.add_argument("--output", default="skmtl-demo-output",
                      help="folder for the plots and the ONNX file (default: %(default)s)")
    demo.add_argument("--data-home", default=None,
                      help="folder holding the data sets (default: $SKMTL_DATA, else "
                           "~/skmtl_data)")
    demo.add_argument("--no-download", action="store_true",
                      help="never download: use synthetic data for missing data sets")
    demo.add_argument("--random-state", type=_seed, default=0,
                      help="seed of the splits and the models (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.data_home == "":  # a path would make it the current folder
        demo.error("--data-home is empty; give a folder, or leave it out for $SKMTL_DATA "
                   "or ~/skmtl_data.")
    try:  # before a minute of training, not after it
        os.makedirs(args.output, exist_ok=True)
        tempfile.TemporaryFile(dir=args.output).close()  # an existing folder may be read-only
    except OSError as exc:
        demo.error(f"--output {args.output!r} cannot be a folder for the results ({exc}).")

    from ._demo import run_demo
    run_demo(args.output, data_home=args.data_home, download=not args.no_download,
             random_state=args.random_state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
