"""How fast STSTNet's first layer runs fused: the measurement behind issue #17's next step.

STSTNet's training step is bound by passes over its 16 x 30 x 30 activations per sample
(docs/cde-reproduction.md, "Fold-batched training"). This script compiles a small C++
kernel (``torch.utils.cpp_extension.load_inline``: needs a C++ compiler and ninja;
skipped without them) that computes, per sample and channel, the 3x3 convolution, the
ReLU, the sums for the BatchNorm statistics and the 3x3/3 max-pool in one pass that stays
in cache, and times its forward against the same computation in eager torch ops
(``conv2d``, ``relu``, ``var_mean``, ``max_pool2d``) in the same run. It checks that both
agree (pooled maps, mean, variance) before timing. Forward only: a training path also needs
the backward pass (recomputing the maps) and the per-fold masking.

Usage: ``python benchmarks/fused_ststnet_layer.py [--threads 2] [--batch 256] [--seconds 3]``
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time

import torch
import torch.nn.functional as F
from torch.utils.cpp_extension import is_ninja_available, load_inline

KERNEL = r"""
#include <torch/extension.h>
#include <omp.h>
#include <cfloat>
// x: (B, Cin, H, W) already padded by 2; w: (C, Cin, 3, 3); b: (C)
// -> max-pool(3, 3, 1) of relu(conv(x)) (B, C, P, P), and per channel the sum and the sum
//    of squares of relu(conv(x)) over the batch and the map (C, 2), float64
std::vector<torch::Tensor> fwd(torch::Tensor x, torch::Tensor w, torch::Tensor bias) {
  const int B = x.size(0), Cin = x.size(1), Hp = x.size(2), Wp = x.size(3), C = w.size(0);
  const int Ho = Hp - 2, Wo = Wp - 2;  // a 3x3 kernel on the padded input
  const int P = (Ho + 2 - 3) / 3 + 1;  // max-pool 3, stride 3, padding 1
  auto pooled = torch::empty({B, C, P, P}, x.options());
  auto sums = torch::zeros({omp_get_max_threads(), C, 2}, torch::dtype(torch::kFloat64));
  const float* xp = x.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  const float* bp = bias.data_ptr<float>();
  float* pp = pooled.data_ptr<float>();
  double* sp = sums.data_ptr<double>();
  #pragma omp parallel
  {
    const int t = omp_get_thread_num();
    std::vector<float> h(Ho * Wo);  // one channel's map of one sample: stays in cache
    #pragma omp for schedule(static)
    for (int n = 0; n < B; ++n) {
      const float* xn = xp + (long)n * Cin * Hp * Wp;
      for (int c = 0; c < C; ++c) {
        float* hc = h.data();
        for (int q = 0; q < Ho * Wo; ++q) hc[q] = bp[c];
        for (int ci = 0; ci < Cin; ++ci) {
          const float* xc = xn + ci * Hp * Wp;
          const float* wk = wp + (c * Cin + ci) * 9;
          for (int di = 0; di < 3; ++di) {
            for (int dj = 0; dj < 3; ++dj) {
              const float wv = wk[di * 3 + dj];
              for (int i = 0; i < Ho; ++i) {
                float* hr = hc + i * Wo;
                const float* xr = xc + (i + di) * Wp + dj;
                #pragma omp simd
                for (int j = 0; j < Wo; ++j) hr[j] += wv * xr[j];
              }
            }
          }
        }
        float fs = 0, fs2 = 0;
        #pragma omp simd reduction(+ : fs, fs2)
        for (int q = 0; q < Ho * Wo; ++q) {
          const float v = hc[q] > 0 ? hc[q] : 0;
          hc[q] = v;
          fs += v;
          fs2 += v * v;
        }
        sp[(t * C + c) * 2] += fs;
        sp[(t * C + c) * 2 + 1] += fs2;
        float* po = pp + ((long)n * C + c) * P * P;
        for (int pi = 0; pi < P; ++pi) {
          for (int pj = 0; pj < P; ++pj) {
            float m = -FLT_MAX;
            for (int a = 0; a < 3; ++a) {
              const int i = pi * 3 + a - 1;
              if (i < 0 || i >= Ho) continue;
              for (int bb = 0; bb < 3; ++bb) {
                const int j = pj * 3 + bb - 1;
                if (j < 0 || j >= Wo) continue;
                m = hc[i * Wo + j] > m ? hc[i * Wo + j] : m;
              }
            }
            po[pi * P + pj] = m;
          }
        }
      }
    }
  }
  return {pooled, sums.sum(0)};
}
"""


def build():
    """The compiled kernel module, or None (with the reason printed) when it cannot be built."""
    if shutil.which("c++") is None or not is_ninja_available():
        print("skipped: needs a C++ compiler and ninja")
        return None
    return load_inline(
        "merkit_fused_ststnet_layer",
        cpp_sources=KERNEL,
        functions=["fwd"],
        extra_cflags=["-O3", "-march=native", "-fopenmp"],
        extra_ldflags=["-fopenmp"],
        build_directory=tempfile.mkdtemp(prefix="merkit-fused-"),
    )


def _rate(fn, batch: int, seconds: float) -> float:
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 2:
        fn()
        n += 1
    return batch * n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    mod = build()
    if mod is None:
        return
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 3, 28, 28, generator=gen)
    w = torch.randn(16, 3, 3, 3, generator=gen) * 0.3
    b = torch.randn(16, generator=gen) * 0.1
    xpad = F.pad(x, (2, 2, 2, 2))

    def eager():
        h = F.relu(F.conv2d(x, w, b, padding=2))
        var, mean = torch.var_mean(h, dim=(0, 2, 3), correction=0)
        return F.max_pool2d(h, 3, 3, 1), mean, var

    pooled, mean, var = eager()
    fused_pooled, sums = mod.fwd(xpad, w, b)
    n = args.batch * 30 * 30
    fmean = sums[:, 0] / n
    fvar = sums[:, 1] / n - fmean**2
    print(
        f"agreement: pooled {float((pooled - fused_pooled).abs().max()):.1e}, mean "
        f"{float((mean - fmean.float()).abs().max()):.1e}, var "
        f"{float((var - fvar.float()).abs().max()):.1e}"
    )
    ref = _rate(eager, args.batch, args.seconds)
    fused = _rate(lambda: mod.fwd(xpad, w, b), args.batch, args.seconds)
    print(f"eager  {ref:9.0f} samples/s (conv, relu, var_mean, max-pool; {args.threads} threads)")
    print(f"fused  {fused:9.0f} samples/s   ratio {fused / ref:.2f}")


if __name__ == "__main__":
    main()
