"""MC dropout's column of `shrinkdrop relevance`, run several times in one process: is it
deterministic for a fixed seed? (It is; what moves between code versions is the engine's random
stream.)

    python benchmarks/relevance_mc_repeat.py --data diabetes --split 4 --seed 4 --repeats 2

Prints, per repeat, the MC dropout test LL (Gal's protocol at --epochs-multiplier x the base
epochs, on the rows and noise columns the verb uses), its chosen configuration and seconds.
"""

from __future__ import annotations

import argparse

import torch

from shrinkdrop.data import resolve_data
from shrinkdrop.experiments.relevance import RelevanceOptions, _mc_dropout, prepare


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="diabetes")
    p.add_argument("--split", type=int, default=4)
    p.add_argument("--seed", type=int, default=4)
    p.add_argument("--noise-features", type=int, default=20)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--epochs-multiplier", type=float, default=100.0)
    a = p.parse_args(argv)
    data = resolve_data(a.data)[0]
    torch.set_default_dtype(torch.float64)  # as the verb: prepare's tensors are float64
    d = prepare(data, a.split, a.noise_features, a.seed)
    opts = RelevanceOptions(data=a.data, out="-", split=a.split, seed=a.seed,
                            noise_features=a.noise_features,
                            epochs_multiplier=a.epochs_multiplier)
    lls = []
    for i in range(a.repeats):
        r = _mc_dropout(opts, d)
        lls.append(r["bernoulli-mc"]["test_ll"])
        print(f"repeat {i}: test LL {lls[-1]:.6f} ({r['bernoulli-mc']['config']}), "
              f"{r['seconds']:.0f} s", flush=True)
    print(f"identical: {len(set(lls)) == 1}")


if __name__ == "__main__":
    main()
