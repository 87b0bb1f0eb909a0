"""Would fusing the stacked step's hidden layer reach the roofline? The forward and backward pass
of one minibatch at the UCI shapes, three ways, against a plain ``torch.bmm`` of the same FLOPs.

Issue 17 asks for a stacked training step at >= 30% of the bmm rate. ``bench_ensemble.py``
measures the whole step (draws, gather, Adam included). This bench isolates the part a fused
kernel would replace: given the minibatch and its noise, the forward pass, the Gaussian loss's
gradient and the backward pass to every weight and bias gradient (no draws, no Adam, no gather),
for K networks d-50-1:

* ``manual``: the engine's own step (``_train_forward``, the closed-form head, the one-hidden-
  layer backward of ``shrinkdrop.ensemble``), eager PyTorch;
* ``compiled``: the same mathematics written plainly and given to ``torch.compile`` (inductor's
  C++ backend, which fuses the elementwise work into its loops); its compile time is printed,
  then the whole step's;
* ``whole`` (not the same work: the *whole* step, to see what compiling everything gives):
  ``torch.compile`` of a training step with Bernoulli noise drawn inside the graph (inductor's
  random numbers), forward, backward, weight decay and Adam updating in place;
* ``C rows``: a hand-written C kernel (gcc -O3 -march=native -ffast-math, loaded with ctypes),
  one pass over each row of each network with the hidden layer in a local buffer: the fusion
  the issue asks about, with no PyTorch overhead at all. Written to a temporary folder and
  compiled at run time; skipped where no C compiler is found.

FLOPs as in bench_ensemble: ``F = 3 x 2 x K x B x (d H + H)``; ``frac`` = (F / time) / (bmm
GFLOP/s), the bmm being ``(b, 128, 128) x (b, 128, 128)`` with ``2 b 128^3`` closest to ``F``.
Every side is checked against the manual step's gradients before timing (float32, to 1e-4
relative).

    python benchmarks/bench_step_fusion.py [--reps 200] [--no-compile] [--no-c]
"""

from __future__ import annotations

import argparse
import ctypes
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import bmm_of, time_all  # noqa: E402

from shrinkdrop.ensemble import StackedNoisyMLP  # noqa: E402
from shrinkdrop.ensemble.adam import _FlatAdam  # noqa: E402
from shrinkdrop.ensemble.fit import _NoisePool  # noqa: E402
from shrinkdrop.ensemble.step import _one_hidden_one_output_backward, _train_forward  # noqa: E402
from shrinkdrop.noise import Bernoulli  # noqa: E402

C_SOURCE = r"""
#include <string.h>
/* One minibatch of K networks d-H-1: forward, Gaussian loss gradient c_k (out - y), backward.
   x, n0: (K, B, d); n1: (K, B, H); y: (K, B); W0: (K, d, H); b0: (K, H); w1: (K, H); b1: (K). */
void step(const float* restrict x, const float* restrict y, const float* restrict n0,
          const float* restrict n1, const float* restrict W0, const float* restrict b0,
          const float* restrict w1, const float* restrict b1, float* restrict gW0,
          float* restrict gb0, float* restrict gw1, float* restrict gb1,
          const float* restrict c, long K, long B, long d, long H) {
  float z[1024], m[1024], u[256];
  for (long k = 0; k < K; k++) {
    const float* W = W0 + k * d * H; const float* bb = b0 + k * H; const float* w = w1 + k * H;
    float* gW = gW0 + k * d * H; float* gb = gb0 + k * H; float* gw = gw1 + k * H;
    memset(gW, 0, sizeof(float) * d * H); memset(gb, 0, sizeof(float) * H);
    memset(gw, 0, sizeof(float) * H);
    float gbias = 0.f, ck = c[k];
    for (long t = 0; t < B; t++) {
      const float* xr = x + (k * B + t) * d; const float* r0 = n0 + (k * B + t) * d;
      const float* r1 = n1 + (k * B + t) * H;
      for (long i = 0; i < d; i++) u[i] = xr[i] * r0[i];
      for (long j = 0; j < H; j++) z[j] = bb[j];
      for (long i = 0; i < d; i++) {
        float ui = u[i]; const float* Wi = W + i * H;
        for (long j = 0; j < H; j++) z[j] += ui * Wi[j];
      }
      float o = b1[k];
      for (long j = 0; j < H; j++) {
        float mj = z[j] > 0.f ? r1[j] : 0.f; m[j] = mj; z[j] *= mj; o += z[j] * w[j];
      }
      float g = ck * (o - y[k * B + t]);
      gbias += g;
      for (long j = 0; j < H; j++) { gw[j] += g * z[j]; m[j] = g * w[j] * m[j]; gb[j] += m[j]; }
      for (long i = 0; i < d; i++) {
        float ui = u[i]; float* gWi = gW + i * H;
        for (long j = 0; j < H; j++) gWi[j] += ui * m[j];
      }
    }
    gb1[k] = gbias;
  }
}
"""


def plain_grads(x, y, n0, n1, W0, b0, W1, b1, c):
    """The step's mathematics in plain PyTorch (what torch.compile is given)."""
    u0 = x * n0
    z = torch.baddbmm(b0, u0, W0)
    m = torch.where(z > 0, n1, 0.0)
    u1 = z * m
    out = (u1 * W1.transpose(1, 2)).sum(-1, keepdim=True) + b1
    g = (out - y) * c
    dz = g * W1.transpose(1, 2) * m
    return (torch.bmm(u0.transpose(1, 2), dz), dz.sum(1, keepdim=True),
            (g * u1).sum(1).unsqueeze(-1), g.sum(1, keepdim=True))


def plain_step(x, y, W0, b0, W1, b1, ms, vs, t, c, wd, lr: float, keep: float) -> None:
    """A whole training step for torch.compile: Bernoulli(keep) noise drawn in the graph
    (inductor's own random numbers), :func:`plain_grads`, weight decay and Adam in place
    (written out rather than ``ensemble.adam._FlatAdam.step``, whose Python step counter would be a
    new constant for the compiler at every step)."""
    K, B, d = x.shape
    n0 = (torch.rand(K, B, d) < keep).to(x.dtype) / keep
    n1 = (torch.rand(K, B, W0.shape[2]) < keep).to(x.dtype) / keep
    gW0, gb0, gW1, gb1 = plain_grads(x, y, n0, n1, W0, b0, W1, b1, c)
    grads = (gW0 + wd * W0, gb0, gW1 + wd * W1, gb1)
    bc1, bc2 = 1 - 0.9 ** t, 1 - 0.999 ** t
    for p, gr, ma, va in zip((W0, b0, W1, b1), grads, ms, vs):
        ma.lerp_(gr, 0.1)
        va.mul_(0.999).addcmul_(gr, gr, value=0.001)
        p.addcdiv_(ma, (va.sqrt() / bc2 ** 0.5).add_(1e-8), value=-lr / bc1)


def c_kernel(tmp: Path):
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        return None, "no C compiler found"
    src, lib = tmp / "step.c", tmp / "step.so"
    src.write_text(C_SOURCE)
    r = subprocess.run([cc, "-O3", "-march=native", "-ffast-math", "-shared", "-fPIC",
                        str(src), "-o", str(lib)], capture_output=True, text=True)
    if r.returncode:
        return None, f"compile failed: {r.stderr.strip()[:200]}"
    so = ctypes.CDLL(str(lib))
    so.step.argtypes = [ctypes.c_void_p] * 13 + [ctypes.c_long] * 4
    return so.step, f"{Path(cc).name} -O3 -march=native -ffast-math"


def measure(K, B, d, H, args, cstep) -> None:
    """One row of the table."""
    net = StackedNoisyMLP([d, H, 1], [Bernoulli(0.95)] * K)
    W0, b0 = net.weights[0].detach(), net.biases[0].detach()
    W1, b1 = net.weights[1].detach(), net.biases[1].detach()
    x, y = torch.randn(K, B, d), torch.randn(K, B, 1)
    n0 = torch.rand(K, B, d).gt(0.05).float().div_(0.95)
    n1 = torch.rand(K, B, H).gt(0.05).float().div_(0.95)
    c = torch.full((K, 1, 1), 1.0 / B)
    grads = [torch.empty_like(p) for p in (W0, W1, b0, b1)]
    xi0 = torch.empty_like(n0)

    def manual():
        with torch.no_grad():
            out, (us, ms) = _train_forward(net, x, [xi0.copy_(n0), n1])
            g = (out - y).mul_(c)
            _one_hidden_one_output_backward(net, us, ms[1], g, grads)

    manual()
    ref = [grads[0].clone(), grads[2].clone(), grads[1].clone(), grads[3].clone()]
    fns = [manual]
    comp_s = "-"
    if not args.no_compile:
        t = time.perf_counter()
        comp = torch.compile(plain_grads, dynamic=False)
        got = comp(x, y, n0, n1, W0, b0, W1, b1, c)
        comp_s = f"{time.perf_counter() - t:.1f}"
        for a, b in zip(got, ref):
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-6), "compiled gradients differ"
        fns.append(lambda comp=comp: comp(x, y, n0, n1, W0, b0, W1, b1, c))
        ps = [p.clone() for p in (W0, b0, W1, b1)]
        st = ([torch.zeros_like(p) for p in ps], [torch.zeros_like(p) for p in ps])
        wd, tt = torch.full((K, 1, 1), 1e-4), torch.tensor(1.0)
        whole = torch.compile(plain_step, dynamic=False)
        t = time.perf_counter()
        whole(x, y, *ps, *st, tt, c, wd, 1e-3, 0.95)
        comp_s += f" + {time.perf_counter() - t:.1f}"
        fns.append(lambda: whole(x, y, *ps, *st, tt, c, wd, 1e-3, 0.95))
    if cstep is not None:
        cg = [torch.empty_like(p) for p in (W0, b0, W1, b1)]
        ptr = [t.data_ptr() for t in (x, y, n0, n1, W0, b0, W1, b1, *cg, c.view(-1))]

        def crows(ptr=ptr, K=K, B=B, d=d, H=H):
            cstep(*ptr, K, B, d, H)

        crows()
        for a, b in zip(cg, ref):
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-6), "C kernel gradients differ"
        fns.append(crows)
    flops = 3 * 2 * K * B * (d * H + H)
    bmm_run, bmm_flops = bmm_of(flops)
    fns.append(bmm_run)
    ts = time_all(fns, args.reps)
    bmm = bmm_flops / ts[-1] / 1e9
    t_m = ts[0]
    t_co = ts[1] if not args.no_compile else float("nan")
    t_w = ts[2] if not args.no_compile else float("nan")
    t_c = ts[-2] if cstep is not None else float("nan")
    fr = [flops / t / 1e9 / bmm for t in (t_m, t_co, t_c, t_w)]
    print(f"{K:>3} {B:>4} {d:>3} {H:>3} {t_m * 1e3:>7.3f} {t_co * 1e3:>8.3f} "
          f"{t_c * 1e3:>7.3f} {t_w * 1e3:>7.3f} {bmm:>8.1f} {fr[0]:>6.3f} {fr[1]:>7.3f} "
          f"{fr[2]:>6.3f} {fr[3]:>7.3f} {comp_s:>11}", flush=True)


def rest(K, B, d, H, reps) -> None:
    """The draws and Adam of one step at the engine's settings (Bernoulli(0.95)), timed alone:
    the draws as ``fit_stacked`` takes them, ``_NoisePool.take`` once per step (a refill of its
    kept blocks every ``R // B`` steps), over whole refill cycles."""
    net = StackedNoisyMLP([d, H, 1], [Bernoulli(0.95)] * K,
                          generator=torch.Generator().manual_seed(0))
    pool = _NoisePool(net, B)
    steps = pool.R // B  # takes per refill

    def cycle():
        for _ in range(steps):
            pool.take(B, torch.float32)

    adam = _FlatAdam(list(net.weights) + list(net.biases), 1e-3)
    (t_draw,) = time_all([cycle], max(10, reps // 10))
    (t_adam,) = time_all([adam.step], reps)  # alone: its 4 x 18k floats stay in cache
    adam.release()
    print(f"  K={K} d={d}: draws {t_draw / steps * 1e3:.3f} (a refill of {pool.R} rows "
          f"every {steps} steps), Adam {t_adam * 1e3:.3f}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    ap.add_argument("--no-c", action="store_true", help="skip the C kernel")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="shrinkdrop-fusion-") as tmp:
        return run(args, Path(tmp))


def run(args, tmp: Path) -> int:
    cstep, cnote = (None, "skipped") if args.no_c else c_kernel(tmp)
    if not args.no_compile:
        try:  # inductor needs a working C++ toolchain: probe once, else skip both columns
            torch.compile(lambda a: a * 2 + 1)(torch.ones(4))
        except Exception as e:  # noqa: BLE001 (any failure of the toolchain)
            print(f"torch.compile unavailable here ({type(e).__name__}): compiled columns skipped")
            args.no_compile = True
    print(f"threads=1 reps={args.reps}; forward + loss gradient + backward of one minibatch "
          f"(given its noise), ms; C kernel: {cnote}")
    print(f"{'K':>3} {'B':>4} {'d':>3} {'H':>3} {'manual':>7} {'compiled':>8} {'C rows':>7} "
          f"{'whole':>7} {'bmm GF/s':>8} {'frac m':>6} {'frac co':>7} {'frac C':>6} "
          f"{'frac wh':>7} {'compile s':>11}")
    for K, B, d, H in [(36, 128, 8, 50), (36, 128, 13, 50)]:
        measure(K, B, d, H, args, cstep)
    print("Beside the forward and backward, a step of fit_stacked also draws its noise (one "
          "refill of the kept blocks per R // B steps) and updates Adam (each timed alone, in its "
          "own loop); per step, ms:")
    for K, B, d, H in [(36, 128, 8, 50), (36, 128, 13, 50)]:
        rest(K, B, d, H, args.reps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
