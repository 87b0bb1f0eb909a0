"""``shrinkdrop uci`` on the local executor against the Dask executor, same units, same process.

A tiny run (diabetes, 3 splits, ``--quick`` methods: 9 units in 4 stacks, 0.05x epochs, 20 MC
samples) with ``--jobs 2`` on (a) the local executor (a fresh spawn pool of 2 processes per run)
and (b) ``--executor dask`` against a loopback cluster of 2 worker processes started once here
(what a standing cluster looks like), and (c) ``--executor dask`` without ``--scheduler`` (the
command starts and closes its own loopback cluster). Repeated ``--reps`` times, alternating;
prints each wall time, the ratios to (a), and checks that every run wrote the same numbers.
Needs the ``cluster`` extra.

    python benchmarks/bench_executor.py [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

ARGS = ["--data", "diabetes", "--quick", "--splits", "0,1,2", "--epochs-multiplier", "0.05",
        "--test-samples", "20", "--no-progress", "--jobs", "2"]


def _parts(out: Path) -> dict:
    recs = {}
    for f in sorted((out / "parts").glob("*.json")):
        rec = json.loads(f.read_text())
        rec["row"].pop("seconds")
        recs[f.name] = rec
    return recs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    args, _ = ap.parse_known_args()  # run_all.py passes on other benchmarks' flags
    import distributed

    from shrinkdrop.cli import main as cli

    times: dict[str, list[float]] = {"local": [], "dask (standing cluster)": [],
                                     "dask (own cluster)": []}
    ref = None
    with tempfile.TemporaryDirectory() as tmp, distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address="127.0.0.1:0") as cluster:
        extra = {"local": [], "dask (standing cluster)": [
            "--executor", "dask", "--scheduler", cluster.scheduler_address],
            "dask (own cluster)": ["--executor", "dask"]}
        for rep in range(args.reps):
            for name, more in extra.items():
                out = Path(tmp) / f"{rep}-{len(times[name])}-{name.split()[0]}-{len(more)}"
                t0 = time.perf_counter()
                assert cli(["uci", "--out", str(out), *ARGS, *more]) == 0
                times[name].append(time.perf_counter() - t0)
                parts = _parts(out)
                ref = parts if ref is None else ref
                if parts != ref:
                    print(f"MISMATCH: {name} rep {rep} wrote other numbers")
                    return 1
    base = min(times["local"])
    for name, ts in times.items():
        print(f"{name:26s} " + " ".join(f"{t:5.2f}" for t in ts)
              + f" s; best {min(ts):.2f} s, ratio to local best {min(ts) / base:.2f}")
    print(f"all {sum(map(len, times.values()))} runs wrote identical part files "
          f"({len(ref)} units)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
