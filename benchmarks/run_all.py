"""Run every ``bench_*.py`` in this folder, one subprocess each (extra arguments are passed on)."""

from __future__ import annotations

import pathlib
import subprocess
import sys


def main() -> int:
    here = pathlib.Path(__file__).resolve().parent
    status = 0
    for path in sorted(here.glob("bench_*.py")):
        print(f"=== {path.name}", flush=True)
        status |= subprocess.call([sys.executable, str(path), *sys.argv[1:]])
    return status


if __name__ == "__main__":
    sys.exit(main())
