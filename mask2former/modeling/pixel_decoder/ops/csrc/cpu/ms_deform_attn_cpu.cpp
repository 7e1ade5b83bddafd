// Multi-scale deformable attention, CPU kernels. The sampling and gradient formulas follow the CUDA
// im2col/col2im kernels of Deformable DETR (Zhu et al., ICLR 2021;
// github.com/fundamentalvision/Deformable-DETR, Apache-2.0), re-organised for CPU caches:
//  * forward: parallel over (batch, query); per head, the four bilinear corners of each sampling point
//    are fused into one pass over the D contiguous channels, accumulated in float (or double).
//  * backward: parallel over (batch, head). A head owns the channel slice value[n, :, m, :], so the
//    grad_value writes of different tasks never collide: no atomics, and the result is deterministic.
//    Reduced precision (half, bfloat16) accumulates grad_value in a per-task float buffer.
//  * the per-task loops are compiled for several x86-64 levels (GCC function multi-versioning:
//    AVX-512, AVX2+FMA, baseline) and the best one for the running CPU is picked at load time, so
//    one portable binary vectorises the channel loops with the widest registers available.
// Pixel centres (align_corners=False): x_pix = loc_x * W - 0.5, y_pix = loc_y * H - 0.5.
#include "ms_deform_attn_cpu.h"

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/Dispatch.h>

#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

// Multi-versioned task loops (see the header comment); a plain function elsewhere.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && __GNUC__ >= 12
#define M2F_TARGET_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define M2F_TARGET_CLONES
#endif
#define M2F_INLINE inline __attribute__((always_inline))

namespace mask2former {
namespace {

struct Dims {
  int64_t N, S, M, D, L, P, Lq;
};

Dims get_dims(const at::Tensor& value, const at::Tensor& sampling_loc) {
  return {value.size(0), value.size(1), value.size(2), value.size(3),
          sampling_loc.size(3), sampling_loc.size(4), sampling_loc.size(1)};
}

// The four bilinear corners of one sampling point: pixel offsets (-1 when outside the map) and weights.
template <typename acc_t>
struct Corners {
  int64_t offset[4];
  acc_t weight[4];
  acc_t lh, lw;  // fractional parts, for the location gradient
  bool inside;
};

// Corners of the point (h_im, w_im) in pixel coordinates on an H x W map; corner order is
// (low, low), (low, high), (high, low), (high, high) in (h, w).
template <typename acc_t>
M2F_INLINE Corners<acc_t> corners_of(acc_t h_im, acc_t w_im, int64_t H, int64_t W) {
  Corners<acc_t> c;
  c.inside = h_im > -1 && w_im > -1 && h_im < H && w_im < W;
  if (!c.inside) {
    return c;
  }
  const acc_t h_floor = std::floor(h_im);
  const acc_t w_floor = std::floor(w_im);
  const int64_t h_low = static_cast<int64_t>(h_floor);
  const int64_t w_low = static_cast<int64_t>(w_floor);
  const int64_t h_high = h_low + 1;
  const int64_t w_high = w_low + 1;
  c.lh = h_im - h_floor;
  c.lw = w_im - w_floor;
  const acc_t hh = 1 - c.lh;
  const acc_t hw = 1 - c.lw;
  const bool h_low_ok = h_low >= 0, h_high_ok = h_high <= H - 1;
  const bool w_low_ok = w_low >= 0, w_high_ok = w_high <= W - 1;
  c.offset[0] = (h_low_ok && w_low_ok) ? h_low * W + w_low : -1;
  c.offset[1] = (h_low_ok && w_high_ok) ? h_low * W + w_high : -1;
  c.offset[2] = (h_high_ok && w_low_ok) ? h_high * W + w_low : -1;
  c.offset[3] = (h_high_ok && w_high_ok) ? h_high * W + w_high : -1;
  c.weight[0] = hh * hw;
  c.weight[1] = hh * c.lw;
  c.weight[2] = c.lh * hw;
  c.weight[3] = c.lh * c.lw;
  return c;
}

// Row of n values as acc_t: the row itself when no conversion is needed, else converted into buf.
// bfloat16 is widened with a shift so that the loop vectorises.
template <typename scalar_t, typename acc_t>
M2F_INLINE const acc_t* as_acc(const scalar_t* src, acc_t* buf, int64_t n) {
  if constexpr (std::is_same<scalar_t, acc_t>::value) {
    return src;
  } else if constexpr (std::is_same<scalar_t, c10::BFloat16>::value) {
    const uint16_t* bits = reinterpret_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < n; ++i) {
      const uint32_t word = static_cast<uint32_t>(bits[i]) << 16;
      std::memcpy(buf + i, &word, sizeof(word));
    }
    return buf;
  } else {
    for (int64_t i = 0; i < n; ++i) {
      buf[i] = static_cast<acc_t>(src[i]);
    }
    return buf;
  }
}

template <typename scalar_t>
struct ForwardArgs {
  Dims dm;
  const scalar_t* value;
  const int64_t* shapes;
  const int64_t* level_start;
  const at::opmath_type<scalar_t>* loc;
  const at::opmath_type<scalar_t>* attn;
  scalar_t* out;
};

// Output rows [begin, end) of the flattened (batch, query) index.
template <typename scalar_t>
M2F_INLINE void forward_range_impl(const ForwardArgs<scalar_t>& a, int64_t begin, int64_t end) {
  using acc_t = at::opmath_type<scalar_t>;
  const Dims& dm = a.dm;
  const int64_t MD = dm.M * dm.D, LP = dm.L * dm.P;
  std::vector<acc_t> acc_buf(dm.D);
  std::vector<acc_t> rows(4 * dm.D);  // corner rows converted to acc_t (reduced precision)
  const std::vector<acc_t> zeros(dm.D, acc_t(0));  // read for corners outside the map
  acc_t* __restrict__ acc = acc_buf.data();
  for (int64_t nq = begin; nq < end; ++nq) {
    const int64_t n = nq / dm.Lq;
    const scalar_t* value_n = a.value + n * dm.S * MD;
    for (int64_t m = 0; m < dm.M; ++m) {
      const int64_t j0 = (nq * dm.M + m) * LP;  // index of (n, q, m, 0, 0) in attn
      std::fill(acc, acc + dm.D, acc_t(0));
      for (int64_t l = 0; l < dm.L; ++l) {
        const int64_t H = a.shapes[2 * l], W = a.shapes[2 * l + 1];
        const scalar_t* value_l = value_n + a.level_start[l] * MD + m * dm.D;
        for (int64_t p = 0; p < dm.P; ++p) {
          const int64_t j = j0 + l * dm.P + p;
          const acc_t w_im = a.loc[2 * j] * W - acc_t(0.5);
          const acc_t h_im = a.loc[2 * j + 1] * H - acc_t(0.5);
          const Corners<acc_t> c = corners_of<acc_t>(h_im, w_im, H, W);
          if (!c.inside) {
            continue;
          }
          const acc_t w_attn = a.attn[j];
          const acc_t* v[4];
          acc_t w[4];
          for (int k = 0; k < 4; ++k) {
            v[k] = c.offset[k] >= 0
                ? as_acc<scalar_t, acc_t>(value_l + c.offset[k] * MD, &rows[k * dm.D], dm.D)
                : zeros.data();
            w[k] = w_attn * c.weight[k];
          }
          for (int64_t d = 0; d < dm.D; ++d) {
            acc[d] += w[0] * v[0][d] + w[1] * v[1][d] + w[2] * v[2][d] + w[3] * v[3][d];
          }
        }
      }
      scalar_t* out_nqm = a.out + nq * MD + m * dm.D;
      for (int64_t d = 0; d < dm.D; ++d) {
        out_nqm[d] = static_cast<scalar_t>(acc[d]);
      }
    }
  }
}

M2F_TARGET_CLONES void forward_range(const ForwardArgs<float>& a, int64_t begin, int64_t end) {
  forward_range_impl(a, begin, end);
}
M2F_TARGET_CLONES void forward_range(const ForwardArgs<double>& a, int64_t begin, int64_t end) {
  forward_range_impl(a, begin, end);
}
M2F_TARGET_CLONES void forward_range(const ForwardArgs<c10::Half>& a, int64_t begin, int64_t end) {
  forward_range_impl(a, begin, end);
}
M2F_TARGET_CLONES void forward_range(
    const ForwardArgs<c10::BFloat16>& a, int64_t begin, int64_t end) {
  forward_range_impl(a, begin, end);
}

template <typename scalar_t>
void forward_kernel(const ForwardArgs<scalar_t>& args) {
  // grain: enough queries per task to amortise the scheduling
  at::parallel_for(0, args.dm.N * args.dm.Lq, 16, [&](int64_t begin, int64_t end) {
    forward_range(args, begin, end);
  });
}

template <typename scalar_t>
struct BackwardArgs {
  Dims dm;
  const scalar_t* value;
  const int64_t* shapes;
  const int64_t* level_start;
  const at::opmath_type<scalar_t>* loc;
  const at::opmath_type<scalar_t>* attn;
  const scalar_t* grad_out;
  scalar_t* grad_value;
  at::opmath_type<scalar_t>* grad_loc;
  at::opmath_type<scalar_t>* grad_attn;
};

// (batch, head) pairs [begin, end): a head owns its grad_value channel slice (no atomics).
template <typename scalar_t>
M2F_INLINE void backward_range_impl(const BackwardArgs<scalar_t>& a, int64_t begin, int64_t end) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr bool kDirect = std::is_same<scalar_t, acc_t>::value;  // accumulate into grad_value itself
  const Dims& dm = a.dm;
  const int64_t MD = dm.M * dm.D, LP = dm.L * dm.P;
  const std::vector<acc_t> zeros(dm.D, acc_t(0));  // read for corners outside the map
  std::vector<acc_t> sink(dm.D);  // written for corners outside the map, never read
  std::vector<acc_t> rows(4 * dm.D);  // corner rows converted to acc_t (reduced precision)
  std::vector<acc_t> go_buf(dm.D);
  std::vector<acc_t> gv_buf(kDirect ? 0 : dm.S * dm.D);
  for (int64_t nm = begin; nm < end; ++nm) {
    const int64_t n = nm / dm.M, m = nm % dm.M;
    const scalar_t* value_nm = a.value + n * dm.S * MD + m * dm.D;
    // grad_value[n, s, m, :] lives at gv + s * gv_stride
    acc_t* gv;
    int64_t gv_stride;
    if constexpr (kDirect) {
      gv = reinterpret_cast<acc_t*>(a.grad_value) + n * dm.S * MD + m * dm.D;
      gv_stride = MD;
    } else {
      std::fill(gv_buf.begin(), gv_buf.end(), acc_t(0));
      gv = gv_buf.data();
      gv_stride = dm.D;
    }
    for (int64_t q = 0; q < dm.Lq; ++q) {
      const int64_t nq = n * dm.Lq + q;
      const acc_t* __restrict__ go =
          as_acc<scalar_t, acc_t>(a.grad_out + nq * MD + m * dm.D, go_buf.data(), dm.D);
      const int64_t j0 = (nq * dm.M + m) * LP;
      for (int64_t l = 0; l < dm.L; ++l) {
        const int64_t H = a.shapes[2 * l], W = a.shapes[2 * l + 1];
        const int64_t start = a.level_start[l];
        for (int64_t p = 0; p < dm.P; ++p) {
          const int64_t j = j0 + l * dm.P + p;
          const acc_t w_im = a.loc[2 * j] * W - acc_t(0.5);
          const acc_t h_im = a.loc[2 * j + 1] * H - acc_t(0.5);
          const Corners<acc_t> c = corners_of<acc_t>(h_im, w_im, H, W);
          a.grad_attn[j] = 0;
          a.grad_loc[2 * j] = 0;
          a.grad_loc[2 * j + 1] = 0;
          if (!c.inside) {
            continue;
          }
          const acc_t w_attn = a.attn[j];
          const acc_t* v[4];
          acc_t* g[4];
          for (int k = 0; k < 4; ++k) {
            const bool ok = c.offset[k] >= 0;
            v[k] = ok ? as_acc<scalar_t, acc_t>(
                            value_nm + (start + c.offset[k]) * MD, &rows[k * dm.D], dm.D)
                      : zeros.data();
            g[k] = ok ? gv + (start + c.offset[k]) * gv_stride : sink.data();
          }
          // d(sample)/dh and d(sample)/dw of the bilinear interpolation, contracted with grad_out
          const acc_t hh = 1 - c.lh, hw = 1 - c.lw;
          acc_t val = 0, grad_h = 0, grad_w = 0;
          for (int64_t d = 0; d < dm.D; ++d) {
            const acc_t v0 = v[0][d], v1 = v[1][d], v2 = v[2][d], v3 = v[3][d];
            val += go[d] *
                (c.weight[0] * v0 + c.weight[1] * v1 + c.weight[2] * v2 + c.weight[3] * v3);
            grad_h += go[d] * (hw * (v2 - v0) + c.lw * (v3 - v1));
            grad_w += go[d] * (hh * (v1 - v0) + c.lh * (v3 - v2));
          }
          a.grad_attn[j] = val;
          a.grad_loc[2 * j] = W * w_attn * grad_w;
          a.grad_loc[2 * j + 1] = H * w_attn * grad_h;
          for (int k = 0; k < 4; ++k) {
            const acc_t wk = w_attn * c.weight[k];
            acc_t* __restrict__ gk = g[k];
            for (int64_t d = 0; d < dm.D; ++d) {
              gk[d] += wk * go[d];
            }
          }
        }
      }
    }
    if constexpr (!kDirect) {
      scalar_t* dst = a.grad_value + n * dm.S * MD + m * dm.D;
      for (int64_t s = 0; s < dm.S; ++s) {
        for (int64_t d = 0; d < dm.D; ++d) {
          dst[s * MD + d] = static_cast<scalar_t>(gv[s * dm.D + d]);
        }
      }
    }
  }
}

M2F_TARGET_CLONES void backward_range(const BackwardArgs<float>& a, int64_t begin, int64_t end) {
  backward_range_impl(a, begin, end);
}
M2F_TARGET_CLONES void backward_range(const BackwardArgs<double>& a, int64_t begin, int64_t end) {
  backward_range_impl(a, begin, end);
}
M2F_TARGET_CLONES void backward_range(
    const BackwardArgs<c10::Half>& a, int64_t begin, int64_t end) {
  backward_range_impl(a, begin, end);
}
M2F_TARGET_CLONES void backward_range(
    const BackwardArgs<c10::BFloat16>& a, int64_t begin, int64_t end) {
  backward_range_impl(a, begin, end);
}

template <typename scalar_t>
void backward_kernel(const BackwardArgs<scalar_t>& args) {
  at::parallel_for(0, args.dm.N * args.dm.M, 1, [&](int64_t begin, int64_t end) {
    backward_range(args, begin, end);
  });
}

}  // namespace

at::Tensor ms_deform_attn_cpu_forward(
    const at::Tensor& value,
    const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index,
    const at::Tensor& sampling_loc,
    const at::Tensor& attn_weight) {
  const Dims dm = get_dims(value, sampling_loc);
  auto output = at::empty({dm.N, dm.Lq, dm.M * dm.D}, value.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, value.scalar_type(), "ms_deform_attn_cpu_forward", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        forward_kernel<scalar_t>(
            {dm,
             value.const_data_ptr<scalar_t>(),
             spatial_shapes.const_data_ptr<int64_t>(),
             level_start_index.const_data_ptr<int64_t>(),
             sampling_loc.const_data_ptr<acc_t>(),
             attn_weight.const_data_ptr<acc_t>(),
             output.mutable_data_ptr<scalar_t>()});
      });
  return output;
}

std::vector<at::Tensor> ms_deform_attn_cpu_backward(
    const at::Tensor& value,
    const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index,
    const at::Tensor& sampling_loc,
    const at::Tensor& attn_weight,
    const at::Tensor& grad_output) {
  const Dims dm = get_dims(value, sampling_loc);
  // float/double accumulate straight into grad_value, so it must start at zero
  const bool reduced = value.scalar_type() == at::kHalf || value.scalar_type() == at::kBFloat16;
  auto grad_value = reduced ? at::empty_like(value) : at::zeros_like(value);
  auto grad_loc = at::empty_like(sampling_loc);  // every entry is written
  auto grad_attn = at::empty_like(attn_weight);
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, value.scalar_type(), "ms_deform_attn_cpu_backward", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        backward_kernel<scalar_t>(
            {dm,
             value.const_data_ptr<scalar_t>(),
             spatial_shapes.const_data_ptr<int64_t>(),
             level_start_index.const_data_ptr<int64_t>(),
             sampling_loc.const_data_ptr<acc_t>(),
             attn_weight.const_data_ptr<acc_t>(),
             grad_output.const_data_ptr<scalar_t>(),
             grad_value.mutable_data_ptr<scalar_t>(),
             grad_loc.mutable_data_ptr<acc_t>(),
             grad_attn.mutable_data_ptr<acc_t>()});
      });
  return {grad_value, grad_loc, grad_attn};
}

}  // namespace mask2former
