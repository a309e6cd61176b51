// Fused blocked CPU kernels of LocAtViT's GAug attention, forward and backward.
//
// Each works through blocks of query rows of one (batch, head): the block's scores are a BLAS
// product (the library torch links), the separable bias row[i, y] * col[i, x] is added and
// the softmax taken in one pass per row while the block is in the cache, and a second product
// gives the output. Nothing (rows x keys) outlives its block and the bias is never stored.
//
// Built with -ffast-math so that the loops vectorise (and, where torch detects AVX2, with
// AVX2/FMA, see __init__.py), sums may be reassociated; but with -fno-finite-math-only, so
// that NaN and infinities follow IEEE rules: a NaN score or term makes its row NaN (it is never
// clamped or compared away), and other (batch, head) rows never read it.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

// Fortran BLAS single-precision GEMM of the BLAS library torch links (column-major).
extern "C" void sgemm_(const char* transa, const char* transb, const int* m, const int* n,
                       const int* k, const float* alpha, const float* a, const int* lda,
                       const float* b, const int* ldb, const float* beta, float* c,
                       const int* ldc);


namespace {

// exp(x) for x <= 0 in plain arithmetic that the compiler vectorises inline (a call into
// libm or libmvec per element costs more than the rest of the softmax): Cephes' expf, a
// degree-7 polynomial on x - n ln 2 times 2^n, within 2 ulp. Below -87.3 the result would
// be subnormal; it is clamped there (about 1e-38, against a row maximum of exp(0) = 1).
// A NaN argument gives NaN: std::max(NaN, c) is NaN, and the polynomial carries it.
inline float exp_nonpositive(float x) {
  x = std::max(x, -87.3f);
  // n = round(x / ln 2) by truncating a non-negative number: converts in one vector op
  // (cvttps2dq; a NaN converts to INT_MIN there, and r below carries the NaN to the result
  // whatever 2^n becomes: clamping the NaN for the conversion cost 10 % of the forward).
  const int32_t ni = -static_cast<int32_t>(0.5f - x * 1.44269504088896341f);
  const float n = static_cast<float>(ni);
  // ln 2 in two parts (-ffast-math may merge them: the error, |n| ulp of exp(x), stays far
  // below the row's largest term, exp(0) = 1).
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  // 2^n from the exponent bits; n is in [-126, 0].
  const int32_t bits = (ni + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

void check(const at::Tensor& t, int64_t dim, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous() &&
                  t.dim() == dim,
              name, " must be a contiguous float32 CPU tensor with ", dim, " dims");
}

// `count` floats of this thread's scratch buffer number `slot` (0 or 1), 64-byte aligned,
// valid until the next call with that slot. Kept between calls: a block's buffer is larger
// than malloc's mmap threshold, so a fresh one per call would fault its pages in every time.
float* scratch_floats(int slot, int64_t count) {
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  thread_local std::unique_ptr<float, Free> buffers[2];
  thread_local int64_t sizes[2] = {0, 0};
  if (sizes[slot] < count) {
    const int64_t bytes = (count * static_cast<int64_t>(sizeof(float)) + 63) / 64 * 64;
    buffers[slot].reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
    TORCH_CHECK(buffers[slot] != nullptr, "out of memory for ", count, " floats of scratch");
    sizes[slot] = count;
  }
  return buffers[slot].get();
}

// A (rows x cols) block of scratch floats whose rows start on 64-byte boundaries: with a
// row stride of L = 1 + H * W (odd on square grids) vector loads would straddle cache lines,
// which costs about 5 % of the forward at 512 px.
struct RowBuffer {
  int64_t ld;
  float* data;

  RowBuffer(int slot, int64_t rows, int64_t cols)
      : ld((cols + 15) / 16 * 16), data(scratch_floats(slot, rows * ld)) {}
  float* row(int64_t r) const { return data + r * ld; }
};

// exp of n non-positive numbers in place: one flat loop, so that it runs in full vectors
// even where the rows it serves are short (a grid side of 14 is one vector and a remainder).
void exp_inplace(float* x, int64_t n) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) x[j] = exp_nonpositive(x[j]);
}

// Clamped half squared distance between grid lines a and b (SPEC 1).
inline float axis_distance(int64_t a, int64_t b, float floor) {
  const float d = static_cast<float>(a - b);
  return std::max(-0.5f * d * d, floor);
}

// The GAug terms of the patch queries: var (B * heads, N, 2) per-axis variances (rows,
// columns) and amp (B * heads, N, 1) amplitudes on a grid (H, W), N = H * W.
struct Terms {
  const float* var;
  const float* amp;
  int64_t H, W;
  float eps, floor;

  Terms(const at::Tensor& var_t, const at::Tensor& amp_t, int64_t H_, int64_t W_, double eps_,
        double floor_, int64_t BH)
      : H(H_), W(W_), eps(static_cast<float>(eps_)), floor(static_cast<float>(floor_)) {
    check(var_t, 3, "var");
    check(amp_t, 3, "amp");
    const int64_t N = H * W;
    TORCH_CHECK(var_t.size(0) == BH && var_t.size(1) == N && var_t.size(2) == 2 &&
                    amp_t.size(0) == BH && amp_t.size(1) == N && amp_t.size(2) == 1,
                "var and amp must be (B * heads, H * W, 2) and (B * heads, H * W, 1)");
    var = var_t.data_ptr<float>();
    amp = amp_t.data_ptr<float>();
  }
};

// The per-axis factors of up to `capacity` consecutive queries (a block of rows), from their
// terms (SPEC 1): for patch query i at cell (yi, xi), bias[i, (y, x)] = (a_i g_i[y]) c_i[x]
// with g_i[y] = exp(Dy(yi, y) / (vy_i + eps)) and c_i[x] = exp(Dx(xi, x) / (vx_i + eps)).
// Prefix queries have none. Rows are indexed within the block.
struct BlockFactors {
  int64_t H, W;
  std::vector<float> g, c, a, inv_y, inv_x;
  std::vector<char> patch;

  BlockFactors(int64_t capacity, int64_t H_, int64_t W_)
      : H(H_), W(W_), g(capacity * H_), c(capacity * W_), a(capacity), inv_y(capacity),
        inv_x(capacity), patch(capacity) {}

  // Queries first .. first + rows - 1 of (batch, head) bh; the first P of a head are prefix.
  void compute(const Terms& t, int64_t bh, int64_t first, int64_t rows, int64_t P) {
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t i = first + r - P;
      patch[r] = i >= 0;
      // Prefix rows get finite placeholders: the exponentials below run over every row.
      inv_y[r] = inv_x[r] = a[r] = 0.f;
      if (i >= 0) {
        const int64_t n = bh * H * W + i;
        inv_y[r] = 1.f / (t.var[2 * n] + t.eps);
        inv_x[r] = 1.f / (t.var[2 * n + 1] + t.eps);
        a[r] = t.amp[n];
      }
      const int64_t yi = i >= 0 ? i / W : 0, xi = i >= 0 ? i % W : 0;
      for (int64_t y = 0; y < H; ++y) g[r * H + y] = axis_distance(y, yi, t.floor) * inv_y[r];
      for (int64_t x = 0; x < W; ++x) c[r * W + x] = axis_distance(x, xi, t.floor) * inv_x[r];
    }
    exp_inplace(g.data(), rows * H);
    exp_inplace(c.data(), rows * W);
  }
};

// One query row: adds the bias (if it is a patch query: g, c its factors and a its amplitude,
// else g null) and replaces the row by exp(row - max); returns the sum, the softmax's
// denominator.
float bias_exp_row(float* srow, int64_t L, int64_t P, const float* g, float a, const float* c,
                   int64_t H, int64_t W) {
  // The max reductions are vectorised by their pragmas (-fno-finite-math-only alone would
  // keep them scalar); a vector max may skip a NaN, but the NaN stays in the row and its
  // exp(NaN - m) makes the sum, so the whole row, NaN.
  float m = srow[0];
#pragma omp simd reduction(max : m)
  for (int64_t j = 1; j < P; ++j) m = std::max(m, srow[j]);
  if (g == nullptr) {
#pragma omp simd reduction(max : m)
    for (int64_t j = P; j < L; ++j) m = std::max(m, srow[j]);
  } else {
    float* patch = srow + P;
    for (int64_t y = 0; y < H; ++y) {
      const float ry = a * g[y];
      float* dst = patch + y * W;
#pragma omp simd reduction(max : m)
      for (int64_t x = 0; x < W; ++x) {
        dst[x] += ry * c[x];
        m = std::max(m, dst[x]);
      }
    }
  }
  float sum = 0.f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < L; ++j) {
    const float e = exp_nonpositive(srow[j] - m);
    srow[j] = e;
    sum += e;
  }
  return sum;
}

// Row r of a block: adds its bias and replaces it by exp(row - max) (bias_exp_row).
float block_exp_row(float* srow, int64_t L, int64_t P, const BlockFactors& f, int64_t r) {
  const bool patch = f.patch[r];
  return bias_exp_row(srow, L, P, patch ? f.g.data() + r * f.H : nullptr, f.a[r],
                      f.c.data() + r * f.W, f.H, f.W);
}

// Row r of a block of the softmax backward, d <- p * (d - di), where p are its
// probabilities; for a patch query at cell (yi, xi) also the gradients of its variances
// (d_var[0..1]) and amplitude (*d_amp), by the chain rule through the bias a g[y] c[x],
// g = exp(Dy inv_y), c = exp(Dx inv_x), inv = 1 / (var + eps).
void softmax_backward_row(float* d, const float* p, float di, int64_t L, int64_t P,
                          const BlockFactors& f, int64_t r, int64_t yi, int64_t xi,
                          float floor, float* d_var, float* d_amp) {
  for (int64_t j = 0; j < L; ++j) d[j] = p[j] * (d[j] - di);
  if (!f.patch[r]) return;
  const int64_t H = f.H, W = f.W;
  const float* g = f.g.data() + r * H;
  const float* c = f.c.data() + r * W;
  const float a = f.a[r];
  // dL/d(a g[y]) = sum_x d[y, x] c[x] and dL/dc[x] = sum_y d[y, x] a g[y], reduced at once
  // onto a and inv per axis; dcx[y] = sum_x d[y, x] c[x] Dx[x].
  float d_a = 0.f, d_inv_y = 0.f, d_inv_x = 0.f;
  const float* patch = d + P;
  for (int64_t y = 0; y < H; ++y) {
    const float* row = patch + y * W;
    float dr = 0.f, dcx = 0.f;
    for (int64_t x = 0; x < W; ++x) {
      const float t = row[x] * c[x];
      dr += t;
      dcx += t * axis_distance(x, xi, floor);
    }
    d_a += dr * g[y];
    d_inv_y += dr * a * g[y] * axis_distance(y, yi, floor);
    d_inv_x += dcx * a * g[y];
  }
  d_var[0] = -d_inv_y * f.inv_y[r] * f.inv_y[r];
  d_var[1] = -d_inv_x * f.inv_x[r] * f.inv_x[r];
  *d_amp = d_a;
}

// Row-major C (m x n, ldc) = alpha * A (m x k) B^T (B: n x k) when b_transposed, else
// alpha * A B (B: k x n); A and B row-major with leading dimensions lda, ldb.
// With a_transposed, A is given as k x m; with beta = 1 the product is added to C.
void gemm_rowmajor(bool b_transposed, int64_t m, int64_t n, int64_t k, float alpha,
                   const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                   int64_t ldc, float beta = 0.f, bool a_transposed = false) {
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T.
  const char tb = b_transposed ? 'T' : 'N', ta = a_transposed ? 'T' : 'N';
  const int M = n, N = m, K = k, LDB = ldb, LDA = lda, LDC = ldc;
  sgemm_(&tb, &ta, &M, &N, &K, &alpha, b, &LDB, a, &LDA, &beta, c, &LDC);
}

int64_t strided_ok(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat && t.dim() == 4 &&
                  t.stride(3) == 1,
              name, " must be a float32 CPU tensor (B, heads, L, c) with unit last stride");
  return t.stride(2);
}

// out (B, heads, L, c) <- softmax(q k^T * scale + bias) v, blocks of query rows at a time: a
// block's scores (rows x L) are one BLAS product, then the bias-and-softmax row pass, then
// one product with v, all in a buffer that stays in cache; the bias is never stored. The
// block's per-axis factors (H + W exponentials per patch query) are computed from the terms
// (var, amp, see Terms) first. The first P queries and keys are prefix tokens without bias.
// q, k, v may be strided views (unit last stride), and so may out.
void attention_forward_(at::Tensor out, const at::Tensor& q, const at::Tensor& k,
                        const at::Tensor& v, const at::Tensor& var, const at::Tensor& amp,
                        int64_t H, int64_t W, int64_t P, double scale, double eps,
                        double floor, int64_t block_rows) {
  const int64_t ldo = strided_ok(out, "out");
  const int64_t ldq = strided_ok(q, "q"), ldk = strided_ok(k, "k"), ldv = strided_ok(v, "v");
  const int64_t B = q.size(0), heads = q.size(1), L = q.size(2), C = q.size(3);
  TORCH_CHECK(k.sizes() == q.sizes() && v.sizes() == q.sizes() && out.sizes() == q.sizes(),
              "q, k, v and out must have one shape");
  TORCH_CHECK(L == H * W + P && block_rows > 0, "q's length must be P + H * W");
  const Terms terms(var, amp, H, W, eps, floor, B * heads);
  const float* qp = q.data_ptr<float>();
  const float* kp = k.data_ptr<float>();
  const float* vp = v.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const int64_t blocks = (L + block_rows - 1) / block_rows;
  at::parallel_for(0, B * heads * blocks, 1, [&](int64_t begin, int64_t end) {
    const RowBuffer scores(0, block_rows, L);
    std::vector<float> inv_sum(block_rows);
    BlockFactors f(block_rows, H, W);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t bh = task / blocks, first = (task % blocks) * block_rows;
      const int64_t b = bh / heads, h = bh % heads;
      const int64_t rows = std::min(block_rows, L - first);
      const float* qb = qp + b * q.stride(0) + h * q.stride(1) + first * ldq;
      const float* kb = kp + b * k.stride(0) + h * k.stride(1);
      const float* vb = vp + b * v.stride(0) + h * v.stride(1);
      gemm_rowmajor(true, rows, L, C, static_cast<float>(scale), qb, ldq, kb, ldk,
                    scores.row(0), scores.ld);
      f.compute(terms, bh, first, rows, P);
      for (int64_t r = 0; r < rows; ++r)
        inv_sum[r] = 1.f / block_exp_row(scores.row(r), L, P, f, r);
      // The softmax's normalisation is applied to the c outputs of a row, not its L weights.
      float* ob = op + b * out.stride(0) + h * out.stride(1) + first * ldo;
      gemm_rowmajor(false, rows, C, L, 1.f, scores.row(0), scores.ld, vb, ldv, ob, ldo);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < C; ++c) ob[r * ldo + c] *= inv_sum[r];
    }
  });
}

// Gradients of attention_forward_ for the output gradient dout, block by block of query rows
// of each (batch, head): a block's probabilities are recomputed, then its score gradient,
// which is reduced onto the variances and amplitude of its patch queries (d_var
// (B * heads, N, 2), d_amp (B * heads, N, 1), written) and multiplied into dq (written) and
// dk, dv (accumulated). out is the forward's output: the softmax backward's row term is
// sum_c dout * out. dq, dk, dv are contiguous (B, heads, L, c); q, k, v, out, dout may be
// strided views with unit last stride.
void attention_backward_(at::Tensor dq, at::Tensor dk, at::Tensor dv, at::Tensor d_var,
                         at::Tensor d_amp, const at::Tensor& dout, const at::Tensor& q,
                         const at::Tensor& k, const at::Tensor& v, const at::Tensor& out,
                         const at::Tensor& var, const at::Tensor& amp, int64_t H, int64_t W,
                         int64_t P, double scale, double eps, double floor,
                         int64_t block_rows) {
  check(dq, 4, "dq");
  check(dk, 4, "dk");
  check(dv, 4, "dv");
  const int64_t ldg = strided_ok(dout, "dout"), ldo = strided_ok(out, "out");
  const int64_t ldq = strided_ok(q, "q"), ldk = strided_ok(k, "k"), ldv = strided_ok(v, "v");
  const int64_t B = q.size(0), heads = q.size(1), L = q.size(2), C = q.size(3);
  TORCH_CHECK(k.sizes() == q.sizes() && v.sizes() == q.sizes() && dout.sizes() == q.sizes() &&
                  out.sizes() == q.sizes() && dq.sizes() == q.sizes() &&
                  dk.sizes() == q.sizes() && dv.sizes() == q.sizes(),
              "q, k, v, out, dout and the gradients must have one shape");
  TORCH_CHECK(L == H * W + P && block_rows > 0, "q's length must be P + H * W");
  const Terms terms(var, amp, H, W, eps, floor, B * heads);
  check(d_var, 3, "d_var");
  check(d_amp, 3, "d_amp");
  TORCH_CHECK(d_var.sizes() == var.sizes() && d_amp.sizes() == amp.sizes(),
              "d_var and d_amp must have the shapes of var and amp");
  const float sc = static_cast<float>(scale);
  at::parallel_for(0, B * heads, 1, [&](int64_t begin, int64_t end) {
    const RowBuffer probs(0, block_rows, L), dscores(1, block_rows, L);
    std::vector<float> q_scaled(block_rows * C);
    BlockFactors f(block_rows, H, W);
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / heads, h = bh % heads;
      const float* qh = q.data_ptr<float>() + b * q.stride(0) + h * q.stride(1);
      const float* kh = k.data_ptr<float>() + b * k.stride(0) + h * k.stride(1);
      const float* vh = v.data_ptr<float>() + b * v.stride(0) + h * v.stride(1);
      const float* oh = out.data_ptr<float>() + b * out.stride(0) + h * out.stride(1);
      const float* gh = dout.data_ptr<float>() + b * dout.stride(0) + h * dout.stride(1);
      float* dqh = dq.data_ptr<float>() + bh * L * C;
      float* dkh = dk.data_ptr<float>() + bh * L * C;
      float* dvh = dv.data_ptr<float>() + bh * L * C;
      float* dvar = d_var.data_ptr<float>() + bh * (L - P) * 2;
      float* damp = d_amp.data_ptr<float>() + bh * (L - P);
      for (int64_t first = 0; first < L; first += block_rows) {
        const int64_t rows = std::min(block_rows, L - first);
        const float accumulate = first == 0 ? 0.f : 1.f;
        // The block's queries scaled once: they give the scores and dk.
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < C; ++c) q_scaled[r * C + c] = sc * qh[(first + r) * ldq + c];
        gemm_rowmajor(true, rows, L, C, 1.f, q_scaled.data(), C, kh, ldk, probs.row(0),
                      probs.ld);
        f.compute(terms, bh, first, rows, P);
        for (int64_t r = 0; r < rows; ++r) {
          float* prow = probs.row(r);
          const float inv = 1.f / block_exp_row(prow, L, P, f, r);
          for (int64_t j = 0; j < L; ++j) prow[j] *= inv;
        }
        const float* gb = gh + first * ldg;
        // dv += P^T dO_block
        gemm_rowmajor(false, L, C, rows, 1.f, probs.row(0), probs.ld, gb, ldg, dvh, C,
                      accumulate, true);
        // dP = dO_block v^T
        gemm_rowmajor(true, rows, L, C, 1.f, gb, ldg, vh, ldv, dscores.row(0), dscores.ld);
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t qi = first + r, i = qi - P;
          const bool patch = qi >= P;
          // The softmax backward's row term: sum_c dO_ic O_ic.
          float delta = 0.f;
          for (int64_t c = 0; c < C; ++c) delta += gb[r * ldg + c] * oh[qi * ldo + c];
          softmax_backward_row(dscores.row(r), probs.row(r), delta, L, P, f, r,
                               patch ? i / W : 0, patch ? i % W : 0, terms.floor,
                               patch ? dvar + 2 * i : nullptr, patch ? damp + i : nullptr);
        }
        // dq_block = scale dS k;  dk += dS^T (scale q_block)
        gemm_rowmajor(false, rows, C, L, sc, dscores.row(0), dscores.ld, kh, ldk,
                      dqh + first * C, C);
        gemm_rowmajor(false, L, C, rows, 1.f, dscores.row(0), dscores.ld, q_scaled.data(), C,
                      dkh, C, accumulate, true);
      }
    }
  });
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("attention_forward_", &attention_forward_);
  m.def("attention_backward_", &attention_backward_);
}
