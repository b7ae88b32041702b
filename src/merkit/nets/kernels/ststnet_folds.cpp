// STSTNet's convolution layer for k folds over one shared mini-batch, fused.
//
// Built on first use by merkit.nets.kernels (torch.utils.cpp_extension.load). The math
// and the proof that it equals the network's layer are in merkit/nets/ststnet_folds.py.
//
// Per (sample n, fold f) with mask[n, f] = 1 (n is a training row of f), in one pass over
// the map that stays in cache:
//   z = W_f . patch + b_f (16 channels, 3x3, padding 2), r = relu(z)
//   S1 = sum r, S2 = sum r^2                    (BatchNorm statistics, per fold/channel)
//   Q1 = sum 1[z > 0] patch, Q2 = sum r patch   (their derivatives w.r.t. W_f, b_f)
//   the 3x3 / stride 3 / padding 1 max-pool of sgn * r (sgn = sign of the BatchNorm
//   scale: max-pooling commutes with a BatchNorm of positive scale, a negative one pools
//   the minimum), then dropout (a counter-based hash of (seed, fold, step, row, element),
//   so a fold's masks do not depend on which folds share its batch) and the 2x2 average
//   pool, as H1 = avg(d * pooled r) and H0 = avg(d): the network's pooled features are
//   a * H1 + (beta - a * mu) * H0 with a = gamma / sigma.
// Each fold is reduced by one thread in sample order: the sums do not depend on the
// thread count or on the other folds.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cstdint>
#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

typedef float v8 __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef double v4d __attribute__((vector_size(32)));

namespace {

constexpr int C = 16;  // STSTNet's 3 + 5 + 8 channels

// keep a vector in a register: compilers otherwise fold its reload into every FMA,
// which makes these loops bound by loads instead of arithmetic (x86: only with AVX, whose
// registers hold the 8 floats; without it there is no 32-byte register to name)
#if (defined(__x86_64__) || defined(__i386__)) && defined(__AVX__)
#define IN_REGISTER(v) __asm__("" : "+x"(v))
#elif defined(__aarch64__)
#define IN_REGISTER(v) __asm__("" : "+w"(v))
#else
#define IN_REGISTER(v) (void)0
#endif

inline v8 splat(float x) { return v8{x, x, x, x, x, x, x, x}; }
inline v8 vload(const float* p) { v8 v; std::memcpy(&v, p, sizeof v); return v; }
inline void vstore(float* p, v8 v) { std::memcpy(p, &v, sizeof v); }

inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// the dropout key of (seed, fold, step, row)
inline uint64_t drop_key(uint64_t seed, int64_t fold, int64_t step, int64_t row) {
  uint64_t k = mix64(seed + 0x9E3779B97F4A7C15ULL);
  k = mix64(k ^ (uint64_t)fold * 0xD1B54A32D192ED03ULL);
  k = mix64(k ^ (uint64_t)step * 0x8CB92BA72F3D8DD7ULL);
  return mix64(k ^ (uint64_t)row * 0xABC98388FB8FAC03ULL);
}
// the dropout factors d (0 or scale = 1 / (1 - p)) of one (sample, fold), written in
// (pooled cell q, channel c) order as d[q * 16 + c]: element e = c * NP + q is kept when
// bits 40..63 (e even) or 16..39 (e odd) of mix64(key + (e / 2) * golden) are >= threshold
// (= p * 2^24). Branch-free: the decisions are random, a branch per element mispredicts.
#if defined(__AVX2__)
// mix64 on 4 lanes (AVX2 has no 64-bit multiply: three 32 x 32 -> 64 products)
inline __m256i mul64(__m256i a, uint64_t k) {
  const __m256i klo = _mm256_set1_epi64x((int64_t)(k & 0xFFFFFFFFULL));
  const __m256i khi = _mm256_set1_epi64x((int64_t)(k >> 32));
  const __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a, 32), klo),
                                         _mm256_mul_epu32(a, khi));
  return _mm256_add_epi64(_mm256_mul_epu32(a, klo), _mm256_slli_epi64(cross, 32));
}
inline __m256i mix64x4(__m256i z) {
  z = mul64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 30)), 0xBF58476D1CE4E5B9ULL);
  z = mul64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 27)), 0x94D049BB133111EBULL);
  return _mm256_xor_si256(z, _mm256_srli_epi64(z, 31));
}
#endif

void drop_factors(uint64_t key, int NP, uint32_t threshold, float scale, float* d) {
  constexpr uint64_t golden = 0x9E3779B97F4A7C15ULL;
  uint32_t bits;
  std::memcpy(&bits, &scale, sizeof bits);
  const int pairs = C * NP / 2;  // C * NP is even
  int i = 0, c = 0, q = 0;
#if defined(__AVX2__)
  // 4 hashes (8 elements) per step: lane l of the counter is key + (i + l) * golden
  __m256i at = _mm256_set_epi64x((int64_t)(key + 3 * golden), (int64_t)(key + 2 * golden),
                                 (int64_t)(key + golden), (int64_t)key);
  const __m256i step = _mm256_set1_epi64x((int64_t)(4 * golden));
  const __m256i below = _mm256_set1_epi64x((int64_t)threshold - 1);  // x >= t: x > t - 1
  const __m256i low24 = _mm256_set1_epi64x(0xFFFFFF);
  const __m256i even_bits = _mm256_set1_epi64x((int64_t)bits);  // low half of a lane
  const __m256i odd_bits = _mm256_set1_epi64x((int64_t)((uint64_t)bits << 32));
  alignas(32) uint32_t out[8];  // elements 2i .. 2i + 7 in order
  for (; i + 4 <= pairs; i += 4) {
    const __m256i h = mix64x4(at);
    at = _mm256_add_epi64(at, step);
    const __m256i hi = _mm256_srli_epi64(h, 40);
    const __m256i lo = _mm256_and_si256(_mm256_srli_epi64(h, 16), low24);
    const __m256i even = _mm256_and_si256(_mm256_cmpgt_epi64(hi, below), even_bits);
    const __m256i odd = _mm256_and_si256(_mm256_cmpgt_epi64(lo, below), odd_bits);
    _mm256_store_si256((__m256i*)out, _mm256_or_si256(even, odd));
    for (int l = 0; l < 8; ++l) {
      std::memcpy(d + q * C + c, out + l, sizeof(uint32_t));
      if (++q == NP) q = 0, ++c;
    }
  }
#endif
  for (; i < pairs; ++i) {
    const uint64_t h = mix64(key + (uint64_t)i * golden);
    // all-one / all-zero masks of the decisions (no branch, no conditional move)
    const uint32_t hi = bits & (0u - (uint32_t)((uint32_t)(h >> 40) >= threshold));
    const uint32_t lo = bits & (0u - (uint32_t)((uint32_t)((h >> 16) & 0xFFFFFF) >= threshold));
    std::memcpy(d + q * C + c, &hi, sizeof hi);
    if (++q == NP) q = 0, ++c;
    std::memcpy(d + q * C + c, &lo, sizeof lo);
    if (++q == NP) q = 0, ++c;
  }
}

// out[0..15] = a[0..7], b[0..7] as int16 (the values fit)
inline void store_i16(int16_t* out, v8i a, v8i b) {
#if defined(__AVX2__)
  const __m256i packed = _mm256_packs_epi32((__m256i)a, (__m256i)b);  // a0-3 b0-3 a4-7 b4-7
  _mm256_storeu_si256((__m256i*)out, _mm256_permute4x64_epi64(packed, 0xD8));
#else
  for (int l = 0; l < 8; ++l) {
    out[l] = (int16_t)a[l];
    out[8 + l] = (int16_t)b[l];
  }
#endif
}

// out[0..7] += v (float to double)
inline void add_to_f64(double* out, v8 v) {
  const v4d lo = {(double)v[0], (double)v[1], (double)v[2], (double)v[3]};
  const v4d hi = {(double)v[4], (double)v[5], (double)v[6], (double)v[7]};
  v4d a, b;
  std::memcpy(&a, out, sizeof a);
  std::memcpy(&b, out + 4, sizeof b);
  a += lo;
  b += hi;
  std::memcpy(out, &a, sizeof a);
  std::memcpy(out + 4, &b, sizeof b);
}

struct Geometry {
  int Cin, Hp, Wp;  // input, already padded by 2
  int Ho, Wo, WS;   // conv map; WS = Wo rounded up to 6 (row stride of the patches)
  int J, JS;        // patch length Cin * 9 + 1 (the bias), rounded up to 2
  int Ph, Pw, Ah, Aw;  // max-pooled and average-pooled sizes
  Geometry(int cin, int hp, int wp) : Cin(cin), Hp(hp), Wp(wp) {
    Ho = Hp - 2; Wo = Wp - 2; WS = (Wo + 5) / 6 * 6;
    J = Cin * 9 + 1; JS = (J + 1) / 2 * 2;
    Ph = (Ho - 1) / 3 + 1; Pw = (Wo - 1) / 3 + 1; Ah = Ph / 2; Aw = Pw / 2;
  }
  int positions() const { return Ho * WS; }
};

// patches of one sample: row (i * WS + j) holds its 3x3xCin inputs, then 1 (the bias),
// then zeros; the positions j >= Wo of each row are all zero (so r = 0 and 1[z > 0] = 0)
void build_patches(const float* xn, const Geometry& g, float* P) {
  std::memset(P, 0, sizeof(float) * g.positions() * g.JS);
  for (int i = 0; i < g.Ho; ++i)
    for (int j = 0; j < g.Wo; ++j) {
      float* row = P + (i * g.WS + j) * g.JS;
      for (int ci = 0; ci < g.Cin; ++ci)
        for (int di = 0; di < 3; ++di)
          for (int dj = 0; dj < 3; ++dj)
            row[ci * 9 + di * 3 + dj] = xn[(ci * g.Hp + i + di) * g.Wp + j + dj];
      row[g.J - 1] = 1.0f;
    }
}

// q1[k] += sum_j m[j] * p[j][k], q2[k] += sum_j r[j] * p[j][k] for k < KB over the WS
// positions j of a map row (p: patch rows of stride JS; r, m, q1, q2: every 2nd vector)
// (M holds the masks 1[z > 0] as all-one / all-zero bit patterns: Q1 then costs a bitwise
// and and an add per element, which run beside the multiply-adds of Q2 on CPUs with
// separate add and multiply-add units)
template <int KB>
inline void q_tile(const float* p, int JS, int WS, const v8* R, const v8i* M, v8* Q1, v8* Q2) {
  v8 q1[KB], q2[KB];
  for (int k = 0; k < KB; ++k) {
    q1[k] = Q1[k * 2];
    q2[k] = Q2[k * 2];
  }
  for (int j = 0; j < WS; ++j) {
    v8 r = R[j * 2];
    v8i m = M[j * 2];
    IN_REGISTER(r);
    IN_REGISTER(m);
    const float* pj = p + j * JS;
    for (int k = 0; k < KB; ++k) {
      const v8 b = splat(pj[k]);
      q1[k] += (v8)((v8i)b & m);
      q2[k] += r * b;
    }
  }
  for (int k = 0; k < KB; ++k) {
    Q1[k * 2] = q1[k];
    Q2[k * 2] = q2[k];
  }
}

}  // namespace

// xpad (N, Cin, Hp, Wp) f32; wb (F, 16, J) f32 (weights then bias); sgn (F, 16) f32 (+1/-1);
// mask (N, F) u8; rows (N) i64 (dataset rows, for dropout); folds (F) i64 (fold indices)
// -> H1, H0 (N, F, 16, Ah*Aw) f32, arg (N, F, Ph*Pw, 16) i16 (patch row of the pooled
//    element when its gradient is nonzero, else -1), S (F, 2, 16) f64, Q (F, 2, JS, 16) f64
std::vector<torch::Tensor> forward(torch::Tensor xpad, torch::Tensor wb, torch::Tensor sgn,
                                   torch::Tensor mask, torch::Tensor rows, torch::Tensor folds,
                                   int64_t seed, int64_t step, double p) {
  const Geometry g(xpad.size(1), xpad.size(2), xpad.size(3));
  const int64_t N = xpad.size(0), F = wb.size(0);
  TORCH_CHECK(wb.size(1) == C && wb.size(2) == g.J, "wb must be (F, 16, Cin*9+1)");
  const int NA = g.Ah * g.Aw, NP = g.Ph * g.Pw;
  auto f32 = torch::dtype(torch::kFloat32);
  // every element is written below (masked rows: H = 0, arg = -1)
  auto H1 = torch::empty({N, F, C, NA}, f32);
  auto H0 = torch::empty({N, F, C, NA}, f32);
  auto arg = torch::empty({N, F, NP, C}, torch::dtype(torch::kInt16));
  auto S = torch::zeros({F, 2, C}, torch::dtype(torch::kFloat64));
  auto Q = torch::zeros({F, 2, g.JS, C}, torch::dtype(torch::kFloat64));
  const float* xp = xpad.data_ptr<float>();
  const float* wp = wb.data_ptr<float>();
  const float* sp = sgn.data_ptr<float>();
  const uint8_t* mp = mask.data_ptr<uint8_t>();
  const int64_t* rp = rows.data_ptr<int64_t>();
  const int64_t* fp = folds.data_ptr<int64_t>();
  float* h1p = H1.data_ptr<float>();
  float* h0p = H0.data_ptr<float>();
  int16_t* ap = arg.data_ptr<int16_t>();
  double* Sp = S.data_ptr<double>();
  double* Qp = Q.data_ptr<double>();
  const uint32_t threshold = (uint32_t)(p * 16777216.0);
  const float dscale = p < 1.0 ? (float)(1.0 / (1.0 - p)) : 0.0f;
  const int64_t in_size = (int64_t)g.Cin * g.Hp * g.Wp;
  // each fold's weights as vectors over its 8-channel halves: Wt[(f * JS + j) * 2 + h]
  std::vector<v8> Wt((size_t)F * g.JS * 2);
  for (int64_t f = 0; f < F; ++f)
    for (int j = 0; j < g.JS; ++j)
      for (int h = 0; h < 2; ++h) {
        v8 v = splat(0.0f);
        if (j < g.J)
          for (int l = 0; l < 8; ++l) v[l] = wp[(f * C + h * 8 + l) * g.J + j];
        Wt[(f * g.JS + j) * 2 + h] = v;
      }

  at::parallel_for(0, F, 1, [&](int64_t f0, int64_t f1) {
    std::vector<float> P((size_t)g.positions() * g.JS);
    std::vector<v8> R((size_t)g.WS * 2);
    std::vector<v8i> M((size_t)g.WS * 2);
    std::vector<v8> Q1((size_t)g.JS * 2), Q2((size_t)g.JS * 2);
    std::vector<v8> best((size_t)g.Pw * 2);
    std::vector<v8i> barg((size_t)g.Pw * 2);
    std::vector<float> dk((size_t)NP * C);
    std::vector<v8> acc1((size_t)NA * 2), acc0((size_t)NA * 2);
    for (int64_t n = 0; n < N; ++n) {
      bool any = false;
      for (int64_t f = f0; f < f1; ++f) {
        if (mp[n * F + f]) {
          any = true;
          continue;
        }
        std::fill_n(h1p + (n * F + f) * C * NA, C * NA, 0.0f);
        std::fill_n(h0p + (n * F + f) * C * NA, C * NA, 0.0f);
        std::fill_n(ap + (n * F + f) * NP * C, NP * C, (int16_t)-1);
      }
      if (!any) continue;
      build_patches(xp + n * in_size, g, P.data());
      for (int64_t f = f0; f < f1; ++f) {
        if (!mp[n * F + f]) continue;
        const v8* wt = Wt.data() + f * g.JS * 2;
        const v8 sg[2] = {vload(sp + f * C), vload(sp + f * C + 8)};
        for (auto& v : Q1) v = splat(0.0f);
        for (auto& v : Q2) v = splat(0.0f);
        v8 s1[2] = {splat(0.0f), splat(0.0f)}, s2[2] = {splat(0.0f), splat(0.0f)};
        // dropout factors d (0 or 1 / (1 - p)) in (pooled cell, channel) order
        if (dscale > 0)
          drop_factors(drop_key((uint64_t)seed, fp[f], step, rp[n]), NP, threshold, dscale,
                       dk.data());
        else
          std::fill(dk.begin(), dk.end(), 0.0f);
        for (auto& v : acc1) v = splat(0.0f);
        for (auto& v : acc0) v = splat(0.0f);
        float* h1 = h1p + (n * F + f) * C * NA;
        float* h0 = h0p + (n * F + f) * C * NA;
        int16_t* an = ap + (n * F + f) * NP * C;
        for (int i = 0; i < g.Ho; ++i) {
          // the map row: 6 positions x 16 channels per step
          for (int j0 = 0; j0 < g.WS; j0 += 6) {
            const float* p0 = P.data() + (i * g.WS + j0) * g.JS;
            v8 a[6][2];
            for (int k = 0; k < 6; ++k) a[k][0] = a[k][1] = splat(0.0f);
            for (int j = 0; j < g.J; ++j) {
              v8 w0 = wt[j * 2], w1 = wt[j * 2 + 1];
              IN_REGISTER(w0);
              IN_REGISTER(w1);
              for (int k = 0; k < 6; ++k) {
                const v8 b = splat(p0[k * g.JS + j]);
                a[k][0] += w0 * b;
                a[k][1] += w1 * b;
              }
            }
            for (int k = 0; k < 6; ++k)
              for (int h = 0; h < 2; ++h) {
                const v8 z = a[k][h];
                const v8i pos = z > splat(0.0f);
                const v8 r = pos ? z : splat(0.0f);
                R[(j0 + k) * 2 + h] = r;
                M[(j0 + k) * 2 + h] = pos;
                s1[h] += r;
                s2[h] += r * r;
              }
          }
          // max-pool: map row i belongs to window row (i + 1) / 3
          const int wr = (i + 1) / 3;
          if (wr < g.Ph) {
            if (i == (wr * 3 - 1 < 0 ? 0 : wr * 3 - 1))
              for (int q = 0; q < g.Pw * 2; ++q) {
                best[q] = splat(-std::numeric_limits<float>::infinity());
                barg[q] = v8i{-1, -1, -1, -1, -1, -1, -1, -1};
              }
            for (int wc = 0; wc < g.Pw; ++wc)
              for (int b = 0; b < 3; ++b) {
                const int jc = wc * 3 + b - 1;
                if (jc < 0 || jc >= g.Wo) continue;
                const int32_t at = i * g.WS + jc;
                const v8i atv = v8i{at, at, at, at, at, at, at, at};
                for (int h = 0; h < 2; ++h) {
                  const v8 v = sg[h] * R[jc * 2 + h];
                  const v8i gt = v > best[wc * 2 + h];  // strict: the first maximum, as torch
                  best[wc * 2 + h] = gt ? v : best[wc * 2 + h];
                  barg[wc * 2 + h] = gt ? atv : barg[wc * 2 + h];
                }
              }
            const int last = wr * 3 + 1 < g.Ho - 1 ? wr * 3 + 1 : g.Ho - 1;
            if (i == last) {  // the window row is complete: 8 channels per step
              for (int wc = 0; wc < g.Pw; ++wc) {
                const int q = wr * g.Pw + wc;
                const bool averaged = wr < 2 * g.Ah && wc < 2 * g.Aw;
                const int k = averaged ? (wr / 2) * g.Aw + wc / 2 : 0;
                v8i at[2];
                for (int h = 0; h < 2; ++h) {
                  const v8 pooled = sg[h] * best[wc * 2 + h];  // r at the maximum
                  const v8 d = averaged ? vload(dk.data() + q * C + h * 8) : splat(0.0f);
                  acc1[k * 2 + h] += splat(0.25f) * d * pooled;
                  acc0[k * 2 + h] += splat(0.25f) * d;
                  const v8i live = (d > splat(0.0f)) & (pooled > splat(0.0f));
                  at[h] = live ? barg[wc * 2 + h] : v8i{-1, -1, -1, -1, -1, -1, -1, -1};
                }
                store_i16(an + q * C, at[0], at[1]);
              }
            }
          }
          // Q1 += 1[z > 0] patch, Q2 += r patch over the row: register tiles of
          // (6, 4 or 2 patch entries) x (8 channels) x (Q1, Q2)
          const float* prow = P.data() + i * g.WS * g.JS;
          for (int h = 0; h < 2; ++h) {
            int jb = 0;
            for (; jb + 6 <= g.JS; jb += 6)
              q_tile<6>(prow + jb, g.JS, g.WS, R.data() + h, M.data() + h, Q1.data() + jb * 2 + h,
                        Q2.data() + jb * 2 + h);
            if (jb + 4 <= g.JS) {
              q_tile<4>(prow + jb, g.JS, g.WS, R.data() + h, M.data() + h, Q1.data() + jb * 2 + h,
                        Q2.data() + jb * 2 + h);
              jb += 4;
            }
            if (jb < g.JS)
              q_tile<2>(prow + jb, g.JS, g.WS, R.data() + h, M.data() + h, Q1.data() + jb * 2 + h,
                        Q2.data() + jb * 2 + h);
          }
        }
        for (int k = 0; k < NA; ++k)
          for (int c = 0; c < C; ++c) {
            h1[c * NA + k] = acc1[k * 2 + c / 8][c % 8];
            h0[c * NA + k] = acc0[k * 2 + c / 8][c % 8];
          }
        double* Sf = Sp + f * 2 * C;
        double* Qf = Qp + f * 2 * g.JS * C;
        for (int h = 0; h < 2; ++h)
          for (int l = 0; l < 8; ++l) {
            Sf[h * 8 + l] += s1[h][l];
            Sf[C + h * 8 + l] += s2[h][l];
          }
        for (int j = 0; j < g.JS; ++j)
          for (int h = 0; h < 2; ++h) {
            add_to_f64(Qf + j * C + h * 8, Q1[j * 2 + h]);
            add_to_f64(Qf + (g.JS + j) * C + h * 8, Q2[j * 2 + h]);
          }
      }
    }
  });
  return {H1, H0, arg, S, Q};
}

// gH1 (N, F, 16, Ah*Aw) f32: the gradient of H1; -> G (F, 16, JS) f64, the gradient of
// the weights and bias through the pooled elements: sum of gH1 * d / 4 * patch(arg)
torch::Tensor backward(torch::Tensor xpad, torch::Tensor mask, torch::Tensor arg,
                       torch::Tensor gH1, double p) {
  const Geometry g(xpad.size(1), xpad.size(2), xpad.size(3));
  const int64_t N = xpad.size(0), F = mask.size(1);
  const int NA = g.Ah * g.Aw, NP = g.Ph * g.Pw;
  auto G = torch::zeros({F, C, g.JS}, torch::dtype(torch::kFloat64));
  const float* xp = xpad.data_ptr<float>();
  const uint8_t* mp = mask.data_ptr<uint8_t>();
  const int16_t* ap = arg.data_ptr<int16_t>();
  const float* gp = gH1.data_ptr<float>();
  double* Gp = G.data_ptr<double>();
  const float dscale = p < 1.0 ? (float)(1.0 / (1.0 - p)) : 0.0f;
  const int64_t in_size = (int64_t)g.Cin * g.Hp * g.Wp;
  const int JV = (g.JS + 7) / 8;  // a patch row as whole vectors (over-reads the next row)
  // pooled element e = q * 16 + c -> its H1 element c * NA + the 2x2 cell of q (unused
  // for the cells outside the average pool: their arg is -1)
  std::vector<int32_t> cell((size_t)NP * C);
  for (int q = 0; q < NP; ++q)
    for (int c = 0; c < C; ++c) {
      const int wr = q / g.Pw, wc = q % g.Pw;
      cell[q * C + c] = c * NA + std::min(wr / 2, g.Ah - 1) * g.Aw + std::min(wc / 2, g.Aw - 1);
    }
  at::parallel_for(0, F, 1, [&](int64_t f0, int64_t f1) {
    std::vector<float> P((size_t)g.positions() * g.JS + 8);
    std::vector<v8> acc((size_t)C * JV);
    std::vector<int32_t> live((size_t)NP * C);
    for (int64_t n = 0; n < N; ++n) {
      bool any = false;
      for (int64_t f = f0; f < f1; ++f) any |= mp[n * F + f] != 0;
      if (!any) continue;
      build_patches(xp + n * in_size, g, P.data());
      for (int64_t f = f0; f < f1; ++f) {
        if (!mp[n * F + f]) continue;
        if (f + 1 < f1) {  // the next fold's argmax and gradient, read at random, from memory
          const char* a1 = (const char*)(ap + (n * F + f + 1) * NP * C);
          const char* g1 = (const char*)(gp + (n * F + f + 1) * C * NA);
          for (size_t b = 0; b < sizeof(int16_t) * NP * C; b += 64) __builtin_prefetch(a1 + b);
          for (size_t b = 0; b < sizeof(float) * C * NA; b += 64) __builtin_prefetch(g1 + b);
        }
        for (auto& v : acc) v = splat(0.0f);
        const int16_t* an = ap + (n * F + f) * NP * C;
        const float* gn = gp + (n * F + f) * C * NA;
        // the pooled elements with a gradient, listed without branches (dropout makes
        // a branch per element unpredictable)
        int count = 0;
        for (int e = 0; e < NP * C; ++e) {
          live[count] = e;
          count += an[e] >= 0;
        }
        for (int t = 0; t < count; ++t) {
          const int e = live[t], c = e % C;
          const v8 cv = splat(0.25f * dscale * gn[cell[e]]);
          const float* pr = P.data() + (size_t)an[e] * g.JS;
          v8* ac = acc.data() + c * JV;
          for (int v = 0; v < JV; ++v) ac[v] += cv * vload(pr + v * 8);
        }
        double* Gf = Gp + f * C * g.JS;
        for (int c = 0; c < C; ++c) {
          int j = 0;
          for (; j + 8 <= g.JS; j += 8) add_to_f64(Gf + c * g.JS + j, acc[c * JV + j / 8]);
          for (; j < g.JS; ++j) Gf[c * g.JS + j] += acc[c * JV + j / 8][j % 8];
        }
      }
    }
  });
  return G;
}

// The linear layer on the pooled features a * H1 + shift * H0 of every (sample, fold),
// with the per-channel BatchNorm map folded into the weights (W1 = fc_w * a,
// W0 = fc_w * shift): one pass over H1 and H0 instead of element-wise passes.
// h1, h0 (N, F, D) f32 (D = 16 * NA), w1, w0 (F, O, D) f32 -> (N, F, O) f32,
// out[n, f, o] = H1[n, f] . W1[f, o] + H0[n, f] . W0[f, o]
torch::Tensor linear_forward(torch::Tensor h1, torch::Tensor h0, torch::Tensor w1,
                             torch::Tensor w0) {
  const int64_t N = h1.size(0), F = h1.size(1), O = w1.size(1);
  const int64_t D = h1.numel() / std::max<int64_t>(N * F, 1);
  TORCH_CHECK(w1.size(0) == F && w1.size(2) == D && w0.sizes() == w1.sizes(),
              "w1, w0 must be (F, O, D)");
  auto out = torch::empty({N, F, O}, torch::dtype(torch::kFloat32));
  const float *a = h1.data_ptr<float>(), *b = h0.data_ptr<float>();
  const float *u = w1.data_ptr<float>(), *v = w0.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const int64_t DV = D / 8 * 8;
  at::parallel_for(0, F, 1, [&](int64_t f0, int64_t f1) {
    std::vector<v8> acc((size_t)O);
    for (int64_t f = f0; f < f1; ++f)
      for (int64_t n = 0; n < N; ++n) {
        const float* x1 = a + (n * F + f) * D;
        const float* x0 = b + (n * F + f) * D;
        for (auto& s : acc) s = splat(0.0f);
        for (int64_t d = 0; d < DV; d += 8) {
          const v8 p1 = vload(x1 + d), p0 = vload(x0 + d);
          for (int64_t o = 0; o < O; ++o)
            acc[o] += p1 * vload(u + (f * O + o) * D + d) + p0 * vload(v + (f * O + o) * D + d);
        }
        for (int64_t o = 0; o < O; ++o) {
          float t = 0.0f;
          for (int l = 0; l < 8; ++l) t += acc[o][l];
          for (int64_t d = DV; d < D; ++d)
            t += x1[d] * u[(f * O + o) * D + d] + x0[d] * v[(f * O + o) * D + d];
          op[(n * F + f) * O + o] = t;
        }
      }
  });
  return out;
}

// The gradients of linear_forward for its output's gradient g (N, F, O) f32:
// -> gH1 (N, F, D) = g . W1, gW1 (F, O, D) = sum_n g H1, gW0 (F, O, D) = sum_n g H0
std::vector<torch::Tensor> linear_backward(torch::Tensor h1, torch::Tensor h0, torch::Tensor w1,
                                           torch::Tensor g) {
  const int64_t N = h1.size(0), F = h1.size(1), O = w1.size(1);
  const int64_t D = h1.numel() / std::max<int64_t>(N * F, 1);
  auto f32 = torch::dtype(torch::kFloat32);
  auto gh1 = torch::empty({N, F, D}, f32);
  auto gw1 = torch::zeros({F, O, D}, f32);
  auto gw0 = torch::zeros({F, O, D}, f32);
  const float *a = h1.data_ptr<float>(), *b = h0.data_ptr<float>();
  const float *u = w1.data_ptr<float>(), *gp = g.data_ptr<float>();
  float *gh = gh1.data_ptr<float>(), *g1 = gw1.data_ptr<float>(), *g0 = gw0.data_ptr<float>();
  const int64_t DV = D / 8 * 8;
  at::parallel_for(0, F, 1, [&](int64_t f0, int64_t f1) {
    for (int64_t f = f0; f < f1; ++f)
      for (int64_t n = 0; n < N; ++n) {
        const float* x1 = a + (n * F + f) * D;
        const float* x0 = b + (n * F + f) * D;
        const float* gn = gp + (n * F + f) * O;
        float* out = gh + (n * F + f) * D;
        for (int64_t d = 0; d < DV; d += 8) {
          const v8 p1 = vload(x1 + d), p0 = vload(x0 + d);
          v8 s = splat(0.0f);
          for (int64_t o = 0; o < O; ++o) {
            const v8 go = splat(gn[o]);
            const int64_t at = (f * O + o) * D + d;
            s += go * vload(u + at);
            vstore(g1 + at, vload(g1 + at) + go * p1);
            vstore(g0 + at, vload(g0 + at) + go * p0);
          }
          vstore(out + d, s);
        }
        for (int64_t d = DV; d < D; ++d) {
          float s = 0.0f;
          for (int64_t o = 0; o < O; ++o) {
            const int64_t at = (f * O + o) * D + d;
            s += gn[o] * u[at];
            g1[at] += gn[o] * x1[d];
            g0[at] += gn[o] * x0[d];
          }
          out[d] = s;
        }
      }
  });
  return {gh1, gw1, gw0};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "STSTNet layer, k folds, shared batch: forward");
  m.def("backward", &backward, "STSTNet layer, k folds, shared batch: weight gradient");
  m.def("linear_forward", &linear_forward, "k folds' linear layers on their pooled features");
  m.def("linear_backward", &linear_backward, "gradients of linear_forward");
}
