"""How fast STSTNet's first layer runs fused: the measurement behind issue #17's next step.

STSTNet's training step is bound by passes over its 16 x 30 x 30 activations per sample
(docs/cde-reproduction.md, "Fold-batched training"). This script compiles a small C++
kernel (``torch.utils.cpp_extension.load_inline``: needs a C++ compiler and ninja;
skipped without them) that computes, per sample and channel, the 3x3 convolution, the
ReLU, the sums for the BatchNorm statistics and the 3x3/3 max-pool in one pass that stays
in cache, and times its forward against the same computation in eager torch ops
(``conv2d``, ``relu``, ``var_mean``, ``max_pool2d``) in the same run. It checks that both
agree (pooled maps, mean, variance) before timing. Then the same for a training step: the
fused backward pass (recomputing each map in cache; the BatchNorm applied to the pooled
maps, with which max-pooling commutes for a positive scale) against autograd through the
eager ops, after checking that the weight and bias gradients agree. Not yet here: the
per-fold masking of a shared batch.

Usage: ``python benchmarks/fused_ststnet_layer.py [--threads 2] [--batch 256] [--seconds 3]``
"""

from __future__ import annotations

import argparse
import shutil
import tempfile

import torch
import torch.nn.functional as F
from fold_batching import _timed
from torch.utils.cpp_extension import is_ninja_available, load_inline

KERNEL = r"""
#include <torch/extension.h>
#include <omp.h>
#include <cfloat>
// hc (Ho x Wo) = 3x3 convolution of one sample's padded input xn (Cin x Hp x Wp) with one
// output channel's weights wc (Cin x 3 x 3) and bias: a map that stays in cache
static void conv_map(const float* xn, const float* wc, float bias, int Cin, int Hp, int Wp,
                     float* hc) {
  const int Ho = Hp - 2, Wo = Wp - 2;
  for (int q = 0; q < Ho * Wo; ++q) hc[q] = bias;
  for (int ci = 0; ci < Cin; ++ci) {
    const float* xc = xn + ci * Hp * Wp;
    const float* wk = wc + ci * 9;
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
}

// position in hc of the first maximum of pooling window (pi, pj) (3x3, stride 3, padding 1),
// the element torch's max-pool picks
static int window_argmax(const float* hc, int Ho, int Wo, int pi, int pj) {
  float mx = -FLT_MAX;
  int arg = 0;
  for (int a = 0; a < 3; ++a) {
    const int i = pi * 3 + a - 1;
    if (i < 0 || i >= Ho) continue;
    for (int b = 0; b < 3; ++b) {
      const int j = pj * 3 + b - 1;
      if (j < 0 || j >= Wo) continue;
      if (hc[i * Wo + j] > mx) {
        mx = hc[i * Wo + j];
        arg = i * Wo + j;
      }
    }
  }
  return arg;
}

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
        conv_map(xn, wp + c * Cin * 9, bp[c], Cin, Hp, Wp, hc);
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
        for (int pi = 0; pi < P; ++pi)
          for (int pj = 0; pj < P; ++pj) po[pi * P + pj] = hc[window_argmax(hc, Ho, Wo, pi, pj)];
      }
    }
  }
  return {pooled, sums.sum(0)};
}

// Backward of (pooled, mean, var) above: gp (B, C, P, P) the gradient of the pooled maps,
// dmean, dvar (C) those of the batch statistics. Recomputes each map in cache.
// Returns dW (C, Cin, 3, 3) and db (C).
std::vector<torch::Tensor> bwd(torch::Tensor x, torch::Tensor w, torch::Tensor bias,
                               torch::Tensor gp, torch::Tensor mean, torch::Tensor dmean,
                               torch::Tensor dvar) {
  const int B = x.size(0), Cin = x.size(1), Hp = x.size(2), Wp = x.size(3), C = w.size(0);
  const int Ho = Hp - 2, Wo = Wp - 2, P = (Ho + 2 - 3) / 3 + 1;
  const double N = (double)B * Ho * Wo;
  const int T = omp_get_max_threads();
  auto dw = torch::zeros({T, C, Cin, 9}, x.options());
  auto db = torch::zeros({T, C}, x.options());
  const float* xp = x.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  const float* bp = bias.data_ptr<float>();
  const float* gpp = gp.data_ptr<float>();
  const float* mp = mean.data_ptr<float>();
  const float* dmp = dmean.data_ptr<float>();
  const float* dvp = dvar.data_ptr<float>();
  float* dwp = dw.data_ptr<float>();
  float* dbp = db.data_ptr<float>();
  #pragma omp parallel
  {
    const int t = omp_get_thread_num();
    std::vector<float> h(Ho * Wo), g(Ho * Wo);
    #pragma omp for schedule(static)
    for (int n = 0; n < B; ++n) {
      const float* xn = xp + (long)n * Cin * Hp * Wp;
      for (int c = 0; c < C; ++c) {
        float* hc = h.data();
        float* gc = g.data();
        conv_map(xn, wp + c * Cin * 9, bp[c], Cin, Hp, Wp, hc);
        // the statistics' gradient reaches every position
        const float a = (float)(dmp[c] / N), bc = (float)(2.0 * dvp[c] / N), m = mp[c];
        #pragma omp simd
        for (int q = 0; q < Ho * Wo; ++q) {
          const float v = hc[q] > 0 ? hc[q] : 0;
          hc[q] = v;
          gc[q] = a + bc * (v - m);
        }
        // max-pool: to the first maximum of each window, as torch does
        const float* gpc = gpp + ((long)n * C + c) * P * P;
        for (int pi = 0; pi < P; ++pi)
          for (int pj = 0; pj < P; ++pj) gc[window_argmax(hc, Ho, Wo, pi, pj)] += gpc[pi * P + pj];
        float sb = 0;  // ReLU, then the bias and weight gradients
        for (int q = 0; q < Ho * Wo; ++q) {
          if (hc[q] <= 0) gc[q] = 0;
          sb += gc[q];
        }
        dbp[t * C + c] += sb;
        for (int ci = 0; ci < Cin; ++ci) {
          const float* xc = xn + ci * Hp * Wp;
          float* dwk = dwp + ((t * C + c) * Cin + ci) * 9;
          for (int di = 0; di < 3; ++di) {
            for (int dj = 0; dj < 3; ++dj) {
              float acc = 0;
              for (int i = 0; i < Ho; ++i) {
                const float* gr = gc + i * Wo;
                const float* xr = xc + (i + di) * Wp + dj;
                #pragma omp simd reduction(+ : acc)
                for (int j = 0; j < Wo; ++j) acc += gr[j] * xr[j];
              }
              dwk[di * 3 + dj] += acc;
            }
          }
        }
      }
    }
  }
  return {dw.sum(0).view({C, Cin, 3, 3}), db.sum(0)};
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
        functions=["fwd", "bwd"],
        extra_cflags=["-O3", "-march=native", "-fopenmp"],
        extra_ldflags=["-fopenmp"],
        build_directory=tempfile.mkdtemp(prefix="merkit-fused-"),
    )


def fused_stats(mod, xpad, w, b):
    """The fused forward: (pooled maps, mean, biased variance) of relu(conv(x)) per channel."""
    pooled, sums = mod.fwd(xpad, w, b)
    n = xpad.shape[0] * (xpad.shape[2] - 2) * (xpad.shape[3] - 2)
    mean = sums[:, 0] / n
    return pooled, mean.float(), (sums[:, 1] / n - mean**2).float()


def fused_layer(mod):
    """The fused layer as an autograd function: (padded x, w, b) -> (pooled, mean, var)."""

    class Layer(torch.autograd.Function):
        @staticmethod
        def forward(ctx, xpad, w, b):
            pooled, mean, var = fused_stats(mod, xpad, w, b)
            ctx.save_for_backward(xpad, w, b, mean)
            return pooled, mean, var

        @staticmethod
        def backward(ctx, gp, gmean, gvar):
            xpad, w, b, mean = ctx.saved_tensors
            dw, db = mod.bwd(xpad, w, b, gp.contiguous(), mean, gmean.contiguous(),
                             gvar.contiguous())  # fmt: skip
            return None, dw, db

    return Layer.apply


def _rate(fn, batch: int, seconds: float) -> float:
    """Samples per second of ``fn`` on ``batch`` samples (:func:`fold_batching._timed`)."""
    return batch / _timed(fn, seconds)


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

    pairs = list(zip(eager(), fused_stats(mod, xpad, w, b), strict=True))
    diffs = [float((r - f).abs().max()) for r, f in pairs]
    print(f"agreement: pooled {diffs[0]:.1e}, mean {diffs[1]:.1e}, var {diffs[2]:.1e}")
    for r, f in pairs:  # a kernel that disagrees is not timed
        torch.testing.assert_close(f, r, rtol=1e-5, atol=1e-5)
    ref = _rate(eager, args.batch, args.seconds)
    fused = _rate(lambda: mod.fwd(xpad, w, b), args.batch, args.seconds)
    print(f"eager  {ref:9.0f} samples/s (conv, relu, var_mean, max-pool; {args.threads} threads)")
    print(f"fused  {fused:9.0f} samples/s   ratio {fused / ref:.2f}")

    # training: the layer with its BatchNorm (positive scale, applied to the pooled maps
    # in the fused path: max-pooling commutes with it) under a fixed linear read-out
    layer = fused_layer(mod)
    w.requires_grad_(True)
    b.requires_grad_(True)
    gamma = torch.rand(16, generator=gen) + 0.5
    beta = torch.randn(16, generator=gen) * 0.1
    readout = torch.randn(args.batch, 16, 10, 10, generator=gen)

    def eager_loss():
        h = F.relu(F.conv2d(x, w, b, padding=2))
        y = F.batch_norm(h, None, None, gamma, beta, True, 0.1, 1e-5)
        return (F.max_pool2d(y, 3, 3, 1) * readout).sum()

    def fused_loss():
        pooled, mean, var = layer(xpad, w, b)
        scale = (gamma / torch.sqrt(var + 1e-5)).view(1, -1, 1, 1)
        y = (pooled - mean.view(1, -1, 1, 1)) * scale + beta.view(1, -1, 1, 1)
        return (y * readout).sum()

    g_ref = torch.autograd.grad(eager_loss(), [w, b])
    g_fused = torch.autograd.grad(fused_loss(), [w, b])
    rel = [float((r - f).abs().max() / r.abs().max()) for r, f in zip(g_ref, g_fused, strict=True)]
    print(f"gradients: relative difference dW {rel[0]:.1e}, db {rel[1]:.1e}")
    for r, f in zip(g_ref, g_fused, strict=True):
        torch.testing.assert_close(f, r, rtol=1e-4, atol=1e-4 * float(r.abs().max()))

    def step(loss):
        def run():
            loss().backward()
            w.grad = b.grad = None

        return run

    ref = _rate(step(eager_loss), args.batch, args.seconds)
    fused = _rate(step(fused_loss), args.batch, args.seconds)
    print(f"train eager  {ref:9.0f} samples/s (forward + backward of conv, relu, BatchNorm, pool)")
    print(f"train fused  {fused:9.0f} samples/s   ratio {fused / ref:.2f}")


if __name__ == "__main__":
    main()
