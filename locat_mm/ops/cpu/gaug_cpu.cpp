// Fused row-wise passes of LocAtViT's factored GAug attention on the CPU.
//
// Built with -ffast-math so that the exponentials vectorise (glibc's libmvec): the code
// therefore never relies on infinities or NaNs, and sums may be reassociated.
//
// The matrix products stay with ATen (MKL); these two functions replace the chains of
// elementwise ATen ops between them, each of which would read and write a whole
// (rows x keys) score chunk: one pass per chunk row instead of five to eight.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <cmath>

// On x86-64, each row kernel is also built for AVX2/FMA and picked at load time: the
// exponentials then run eight at a time.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define LOCAT_ROW_KERNEL __attribute__((target_clones("arch=haswell", "default")))
#else
#define LOCAT_ROW_KERNEL
#endif

namespace {

// One query row: adds the bias (if it is a patch query: r, c are its factors, else null)
// and takes the softmax in place.
LOCAT_ROW_KERNEL void bias_softmax_row(float* srow, int64_t L, int64_t P, const float* r,
                                       const float* c, int64_t H, int64_t W) {
  if (r != nullptr) {
    float* patch = srow + P;
    for (int64_t y = 0; y < H; ++y) {
      const float ry = r[y];
      float* dst = patch + y * W;
      for (int64_t x = 0; x < W; ++x) dst[x] += ry * c[x];
    }
  }
  float m = srow[0];
  for (int64_t j = 1; j < L; ++j) m = std::max(m, srow[j]);
  float sum = 0.f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < L; ++j) {
    const float e = std::exp(srow[j] - m);
    srow[j] = e;
    sum += e;
  }
  const float inv = 1.f / sum;
  for (int64_t j = 0; j < L; ++j) srow[j] *= inv;
}

// One query row of the softmax backward, d <- p * (d - di), and (for a patch query: r, c
// its factors, else null) the gradient of its factors into dr (H) and dc (W).
LOCAT_ROW_KERNEL void softmax_backward_row(float* d, const float* p, float di, int64_t L,
                                           int64_t P, const float* r, const float* c,
                                           float* dr, float* dc, int64_t H, int64_t W) {
  for (int64_t j = 0; j < L; ++j) d[j] = p[j] * (d[j] - di);
  if (r == nullptr) return;
  std::fill(dc, dc + W, 0.f);
  const float* patch = d + P;
  for (int64_t y = 0; y < H; ++y) {
    const float* g = patch + y * W;
    const float ry = r[y];
    float acc = 0.f;
    for (int64_t x = 0; x < W; ++x) {
      acc += g[x] * c[x];
      dc[x] += g[x] * ry;
    }
    dr[y] = acc;
  }
}

void check(const at::Tensor& t, int64_t dim, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous() &&
                  t.dim() == dim,
              name, " must be a contiguous float32 CPU tensor with ", dim, " dims");
}

// scores (BH, R, L) <- softmax(scores + bias) in place, for query rows start .. start + R.
// row (BH, N, H) and col (BH, N, W) are the bias factors of the N = H * W patch queries;
// the first P tokens of queries and keys are prefix tokens without bias.
void bias_softmax_(at::Tensor scores, const at::Tensor& row, const at::Tensor& col,
                   int64_t start, int64_t P) {
  check(scores, 3, "scores");
  check(row, 3, "row");
  check(col, 3, "col");
  const int64_t BH = scores.size(0), R = scores.size(1), L = scores.size(2);
  const int64_t N = row.size(1), H = row.size(2), W = col.size(2);
  TORCH_CHECK(N == H * W && L == N + P && row.size(0) == BH && col.size(0) == BH,
              "bias factors do not match the scores");
  float* s = scores.data_ptr<float>();
  const float* rp = row.data_ptr<float>();
  const float* cp = col.data_ptr<float>();
  at::parallel_for(0, BH * R, 1, [&](int64_t begin, int64_t end) {
    for (int64_t idx = begin; idx < end; ++idx) {
      const int64_t bh = idx / R, q = start + idx % R;
      const bool patch = q >= P;
      bias_softmax_row(s + idx * L, L, P, patch ? rp + (bh * N + (q - P)) * H : nullptr,
                       patch ? cp + (bh * N + (q - P)) * W : nullptr, H, W);
    }
  });
}

// dscores (BH, R, L) <- probs * (dscores - delta) in place (the softmax backward), and the
// gradient of the bias factors of the chunk's patch queries written to d_row (BH, N, H) and
// d_col (BH, N, W): d_row[i, y] = sum_x dS[i, (y, x)] col[i, x],
// d_col[i, x] = sum_y dS[i, (y, x)] row[i, y].
void softmax_backward_factors_(at::Tensor dscores, const at::Tensor& probs,
                               const at::Tensor& delta, const at::Tensor& row,
                               const at::Tensor& col, at::Tensor d_row, at::Tensor d_col,
                               int64_t start, int64_t P) {
  check(dscores, 3, "dscores");
  check(probs, 3, "probs");
  check(delta, 2, "delta");
  check(row, 3, "row");
  check(col, 3, "col");
  check(d_row, 3, "d_row");
  check(d_col, 3, "d_col");
  const int64_t BH = dscores.size(0), R = dscores.size(1), L = dscores.size(2);
  const int64_t N = row.size(1), H = row.size(2), W = col.size(2);
  TORCH_CHECK(N == H * W && L == N + P && probs.sizes() == dscores.sizes() &&
                  delta.size(0) == BH && delta.size(1) == R,
              "shapes do not match");
  float* ds = dscores.data_ptr<float>();
  const float* pr = probs.data_ptr<float>();
  const float* dl = delta.data_ptr<float>();
  const float* rp = row.data_ptr<float>();
  const float* cp = col.data_ptr<float>();
  float* drp = d_row.data_ptr<float>();
  float* dcp = d_col.data_ptr<float>();
  at::parallel_for(0, BH * R, 1, [&](int64_t begin, int64_t end) {
    for (int64_t idx = begin; idx < end; ++idx) {
      const int64_t bh = idx / R, q = start + idx % R;
      const bool patch = q >= P;
      const int64_t i = bh * N + (q - P);
      softmax_backward_row(ds + idx * L, pr + idx * L, dl[idx], L, P,
                           patch ? rp + i * H : nullptr, patch ? cp + i * W : nullptr,
                           patch ? drp + i * H : nullptr, patch ? dcp + i * W : nullptr, H, W);
    }
  });
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("bias_softmax_", &bias_softmax_);
  m.def("softmax_backward_factors_", &softmax_backward_factors_);
}
