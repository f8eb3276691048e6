"""Every benchmark, in order: `python -m bench [--smoke]` from the repository root.

The three models take seconds; the pipeline takes a few minutes (`--smoke`: seconds); the image
benchmark about three minutes (`--smoke`: about two: it still makes a base image and builds once
from scratch), and it says why it is skipped where images cannot be built.
"""

import argparse

from bench import cost, image, log_redaction, pipeline, scaling, timeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny pipeline sizes, to prove it runs")
    args = parser.parse_args()
    cost.main([])
    print()
    log_redaction.main([])
    print()
    scaling.main([])
    print()
    timeline.main([])
    print()
    pipeline.main(["--smoke"] if args.smoke else [])
    print()
    image.main(["--smoke"] if args.smoke else [])


if __name__ == "__main__":
    main()
