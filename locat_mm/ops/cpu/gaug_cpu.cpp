// Fused blocked CPU kernels of LocAtViT's GAug attention, forward and backward.
//
// Each works through blocks of query rows of one (batch, head): the block's scores are a BLAS
// product (the library torch links), the separable bias row[i, y] * col[i, x] is added and
// the softmax taken in one pass per row while the block is in the cache, and a second product
// gives the output. Nothing (rows x keys) outlives its block and the bias is never stored.
//
// Built with -ffast-math so that the loops vectorise (and, where torch detects AVX2, with
// AVX2/FMA, see __init__.py): the code therefore never relies on infinities or NaNs, and sums
// may be reassociated.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
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
inline float exp_nonpositive(float x) {
  x = std::max(x, -87.3f);
  // n = round(x / ln 2) by truncating a non-negative number: converts in one vector op.
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

// One query row: adds the bias (if it is a patch query: r, c are its factors, else null)
// and replaces the row by exp(row - max); returns the sum, the softmax's denominator.
float bias_exp_row(float* srow, int64_t L, int64_t P, const float* r, const float* c,
                   int64_t H, int64_t W) {
  float m = srow[0];
  for (int64_t j = 1; j < P; ++j) m = std::max(m, srow[j]);
  if (r == nullptr) {
    for (int64_t j = P; j < L; ++j) m = std::max(m, srow[j]);
  } else {
    float* patch = srow + P;
    for (int64_t y = 0; y < H; ++y) {
      const float ry = r[y];
      float* dst = patch + y * W;
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

// One query row: adds the bias (as in bias_exp_row) and takes the softmax in place.
void bias_softmax_row(float* srow, int64_t L, int64_t P, const float* r, const float* c,
                      int64_t H, int64_t W) {
  const float inv = 1.f / bias_exp_row(srow, L, P, r, c, H, W);
  for (int64_t j = 0; j < L; ++j) srow[j] *= inv;
}

// One query row of the softmax backward, d <- p * (d - di), and (for a patch query: r, c
// its factors, else null) the gradient of its factors into dr (H) and dc (W).
void softmax_backward_row(float* d, const float* p, float di, int64_t L,
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
// one product with v, all in a buffer that stays in cache; the bias is never stored. row
// (B * heads, N, H) and col (B * heads, N, W) are the bias factors of the N = H * W patch
// queries; the first P queries and keys are prefix tokens without bias. q, k, v may be strided
// views (unit last stride), and so may out.
void attention_forward_(at::Tensor out, const at::Tensor& q, const at::Tensor& k,
                        const at::Tensor& v, const at::Tensor& row, const at::Tensor& col,
                        int64_t P, double scale, int64_t block_rows) {
  check(row, 3, "row");
  check(col, 3, "col");
  const int64_t ldo = strided_ok(out, "out");
  const int64_t ldq = strided_ok(q, "q"), ldk = strided_ok(k, "k"), ldv = strided_ok(v, "v");
  const int64_t B = q.size(0), heads = q.size(1), L = q.size(2), C = q.size(3);
  const int64_t N = row.size(1), H = row.size(2), W = col.size(2);
  TORCH_CHECK(k.sizes() == q.sizes() && v.sizes() == q.sizes() && out.sizes() == q.sizes(),
              "q, k, v and out must have one shape");
  TORCH_CHECK(N == H * W && L == N + P && row.size(0) == B * heads &&
                  col.size(0) == B * heads && block_rows > 0,
              "bias factors do not match q");
  const float* qp = q.data_ptr<float>();
  const float* kp = k.data_ptr<float>();
  const float* vp = v.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const float* rp = row.data_ptr<float>();
  const float* cp = col.data_ptr<float>();
  const int64_t blocks = (L + block_rows - 1) / block_rows;
  at::parallel_for(0, B * heads * blocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scores(block_rows * L), inv_sum(block_rows);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t bh = task / blocks, first = (task % blocks) * block_rows;
      const int64_t b = bh / heads, h = bh % heads;
      const int64_t rows = std::min(block_rows, L - first);
      const float* qb = qp + b * q.stride(0) + h * q.stride(1) + first * ldq;
      const float* kb = kp + b * k.stride(0) + h * k.stride(1);
      const float* vb = vp + b * v.stride(0) + h * v.stride(1);
      gemm_rowmajor(true, rows, L, C, static_cast<float>(scale), qb, ldq, kb, ldk,
                    scores.data(), L);
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t qi = first + r;
        const bool patch = qi >= P;
        inv_sum[r] = 1.f / bias_exp_row(scores.data() + r * L, L, P,
                                        patch ? rp + (bh * N + (qi - P)) * H : nullptr,
                                        patch ? cp + (bh * N + (qi - P)) * W : nullptr, H, W);
      }
      // The softmax's normalisation is applied to the c outputs of a row, not its L weights.
      float* ob = op + b * out.stride(0) + h * out.stride(1) + first * ldo;
      gemm_rowmajor(false, rows, C, L, 1.f, scores.data(), L, vb, ldv, ob, ldo);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < C; ++c) ob[r * ldo + c] *= inv_sum[r];
    }
  });
}

// Gradients of attention_forward_ for the output gradient dout, block by block of query rows
// of each (batch, head): a block's probabilities are recomputed, then its score gradient,
// which is reduced onto the bias factors of its patch queries (d_row (B * heads, N, H),
// d_col (B * heads, N, W)) and multiplied into dq (written) and dk, dv (accumulated). delta
// (B * heads, L) holds sum_c dout * out per query. dq, dk, dv are contiguous (B, heads, L, c);
// q, k, v, dout may be strided views with unit last stride.
void attention_backward_(at::Tensor dq, at::Tensor dk, at::Tensor dv, at::Tensor d_row,
                         at::Tensor d_col, const at::Tensor& dout, const at::Tensor& q,
                         const at::Tensor& k, const at::Tensor& v, const at::Tensor& delta,
                         const at::Tensor& row, const at::Tensor& col, int64_t P, double scale,
                         int64_t block_rows) {
  check(dq, 4, "dq");
  check(dk, 4, "dk");
  check(dv, 4, "dv");
  check(d_row, 3, "d_row");
  check(d_col, 3, "d_col");
  check(delta, 2, "delta");
  check(row, 3, "row");
  check(col, 3, "col");
  const int64_t ldg = strided_ok(dout, "dout");
  const int64_t ldq = strided_ok(q, "q"), ldk = strided_ok(k, "k"), ldv = strided_ok(v, "v");
  const int64_t B = q.size(0), heads = q.size(1), L = q.size(2), C = q.size(3);
  const int64_t N = row.size(1), H = row.size(2), W = col.size(2);
  TORCH_CHECK(k.sizes() == q.sizes() && v.sizes() == q.sizes() && dout.sizes() == q.sizes() &&
                  dq.sizes() == q.sizes() && dk.sizes() == q.sizes() && dv.sizes() == q.sizes(),
              "q, k, v, dout and the gradients must have one shape");
  TORCH_CHECK(N == H * W && L == N + P && row.size(0) == B * heads &&
                  col.size(0) == B * heads && d_row.sizes() == row.sizes() &&
                  d_col.sizes() == col.sizes() && delta.size(0) == B * heads &&
                  delta.size(1) == L && block_rows > 0,
              "bias factors do not match q");
  const float sc = static_cast<float>(scale);
  at::parallel_for(0, B * heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> probs(block_rows * L), dscores(block_rows * L), q_scaled(block_rows * C);
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / heads, h = bh % heads;
      const float* qh = q.data_ptr<float>() + b * q.stride(0) + h * q.stride(1);
      const float* kh = k.data_ptr<float>() + b * k.stride(0) + h * k.stride(1);
      const float* vh = v.data_ptr<float>() + b * v.stride(0) + h * v.stride(1);
      const float* gh = dout.data_ptr<float>() + b * dout.stride(0) + h * dout.stride(1);
      float* dqh = dq.data_ptr<float>() + bh * L * C;
      float* dkh = dk.data_ptr<float>() + bh * L * C;
      float* dvh = dv.data_ptr<float>() + bh * L * C;
      const float* dl = delta.data_ptr<float>() + bh * L;
      for (int64_t first = 0; first < L; first += block_rows) {
        const int64_t rows = std::min(block_rows, L - first);
        const float accumulate = first == 0 ? 0.f : 1.f;
        // The block's queries scaled once: they give the scores and dk.
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < C; ++c) q_scaled[r * C + c] = sc * qh[(first + r) * ldq + c];
        gemm_rowmajor(true, rows, L, C, 1.f, q_scaled.data(), C, kh, ldk, probs.data(), L);
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t qi = first + r, i = bh * N + (qi - P);
          const bool patch = qi >= P;
          bias_softmax_row(probs.data() + r * L, L, P,
                           patch ? row.data_ptr<float>() + i * H : nullptr,
                           patch ? col.data_ptr<float>() + i * W : nullptr, H, W);
        }
        const float* gb = gh + first * ldg;
        // dv += P^T dO_block
        gemm_rowmajor(false, L, C, rows, 1.f, probs.data(), L, gb, ldg, dvh, C, accumulate,
                      true);
        // dP = dO_block v^T
        gemm_rowmajor(true, rows, L, C, 1.f, gb, ldg, vh, ldv, dscores.data(), L);
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t qi = first + r, i = bh * N + (qi - P);
          const bool patch = qi >= P;
          softmax_backward_row(dscores.data() + r * L, probs.data() + r * L, dl[qi], L, P,
                               patch ? row.data_ptr<float>() + i * H : nullptr,
                               patch ? col.data_ptr<float>() + i * W : nullptr,
                               patch ? d_row.data_ptr<float>() + i * H : nullptr,
                               patch ? d_col.data_ptr<float>() + i * W : nullptr, H, W);
        }
        // dq_block = scale dS k;  dk += dS^T (scale q_block)
        gemm_rowmajor(false, rows, C, L, sc, dscores.data(), L, kh, ldk, dqh + first * C, C);
        gemm_rowmajor(false, L, C, rows, 1.f, dscores.data(), L, q_scaled.data(), C, dkh, C,
                      accumulate, true);
      }
    }
  });
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("attention_forward_", &attention_forward_);
  m.def("attention_backward_", &attention_backward_);
}
