"""``python -m reports RUN_DIR [OUT_DIR] [--redraw]``: build the report of a saved run."""

from __future__ import annotations

import argparse
import sys

from .build import build_report, missing_experiments, summary_counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports", description=__doc__)
    parser.add_argument("run_dir", help="run directory holding one folder per experiment")
    parser.add_argument("out_dir", nargs="?", default=None,
                        help="output directory (default: RUN_DIR/report)")
    parser.add_argument("--redraw", action="store_true",
                        help="draw every figure from the tables, ignoring saved PNGs")
    args = parser.parse_args(argv)
    try:
        md, page = build_report(args.run_dir, args.out_dir, redraw=args.redraw)
    except (FileNotFoundError, NotADirectoryError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    counts = summary_counts(args.run_dir)
    print(md)
    print(page)
    print(" · ".join(f"{v} {k}" for k, v in counts.items()))
    missing = missing_experiments(args.run_dir)
    if missing:
        print("missing tables: " + ", ".join(missing))
    return 0


if __name__ == "__main__":
    sys.exit(main())
