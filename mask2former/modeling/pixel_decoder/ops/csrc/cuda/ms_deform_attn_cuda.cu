// Multi-scale deformable attention, CUDA kernels. Port of the im2col (forward) and col2im (backward)
// kernels of Deformable DETR (Zhu et al., ICLR 2021; github.com/fundamentalvision/Deformable-DETR,
// Apache-2.0): one thread per (batch, query, head, channel). Changes from the original:
//  * dispatched over float, double, half and bfloat16; arithmetic in the opmath type (float for
//    half/bfloat16), sampling locations and attention weights always in the opmath type;
//  * grad_value is accumulated with atomicAdd into an opmath buffer (the value tensor itself for
//    float/double), converted to half/bfloat16 at the end;
//  * the per-channel partial gradients of sampling locations and attention weights are summed with
//    warp shuffles over the channel lanes (D a power of two) and written with one atomicAdd per warp,
//    instead of the original's block-size-specialised shared-memory reductions; any D works (a plain
//    atomicAdd per thread when D is not a power of two).
// Pixel centres (align_corners=False): x_pix = loc_x * W - 0.5, y_pix = loc_y * H - 0.5.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAException.h>
#include <c10/macros/Macros.h>

#include <algorithm>

#include "ms_deform_attn_cuda.h"

namespace mask2former {
namespace {

constexpr int kThreads = 256;  // a multiple of the warp size (the backward reduction relies on it)
// Grid size cap: 4096 blocks of 256 threads (1M threads) keep every current GPU busy; larger
// problems (e.g. 1M queries x 8 heads x 32 channels) take the kernels' grid-stride loops, which
// the CUDA tests exercise with a few million elements.
constexpr int64_t kMaxBlocks = 4096;

struct Dims {
  int64_t N, S, M, D, L, P, Lq;
};

inline int64_t num_blocks(int64_t n) {
  return std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads, kMaxBlocks));
}

// Bilinear sample of channel d at pixel position (h_im, w_im) of one level; value_l points at
// value[n, level_start, m, d] and consecutive pixels are `stride` elements apart.
template <typename scalar_t, typename acc_t>
__device__ acc_t bilinear(
    const scalar_t* value_l, int64_t H, int64_t W, int64_t stride, acc_t h_im, acc_t w_im) {
  const int64_t h_low = static_cast<int64_t>(floor(h_im));
  const int64_t w_low = static_cast<int64_t>(floor(w_im));
  const int64_t h_high = h_low + 1, w_high = w_low + 1;
  const acc_t lh = h_im - h_low, lw = w_im - w_low;
  const acc_t hh = 1 - lh, hw = 1 - lw;
  acc_t v1 = 0, v2 = 0, v3 = 0, v4 = 0;
  if (h_low >= 0 && w_low >= 0) v1 = static_cast<acc_t>(value_l[(h_low * W + w_low) * stride]);
  if (h_low >= 0 && w_high <= W - 1) v2 = static_cast<acc_t>(value_l[(h_low * W + w_high) * stride]);
  if (h_high <= H - 1 && w_low >= 0) v3 = static_cast<acc_t>(value_l[(h_high * W + w_low) * stride]);
  if (h_high <= H - 1 && w_high <= W - 1) {
    v4 = static_cast<acc_t>(value_l[(h_high * W + w_high) * stride]);
  }
  return hh * hw * v1 + hh * lw * v2 + lh * hw * v3 + lh * lw * v4;
}

// Backward of `bilinear` for one channel: adds top_grad_value * corner weight to grad_value_l
// (atomically) and returns the sample and its derivatives d/dh, d/dw.
template <typename scalar_t, typename acc_t>
__device__ void bilinear_backward(
    const scalar_t* value_l,
    int64_t H,
    int64_t W,
    int64_t stride,
    acc_t h_im,
    acc_t w_im,
    acc_t top_grad_value,
    acc_t* grad_value_l,
    acc_t* sample,
    acc_t* grad_h,
    acc_t* grad_w) {
  const int64_t h_low = static_cast<int64_t>(floor(h_im));
  const int64_t w_low = static_cast<int64_t>(floor(w_im));
  const int64_t h_high = h_low + 1, w_high = w_low + 1;
  const acc_t lh = h_im - h_low, lw = w_im - w_low;
  const acc_t hh = 1 - lh, hw = 1 - lw;
  acc_t v1 = 0, v2 = 0, v3 = 0, v4 = 0;
  if (h_low >= 0 && w_low >= 0) {
    const int64_t off = (h_low * W + w_low) * stride;
    v1 = static_cast<acc_t>(value_l[off]);
    atomicAdd(grad_value_l + off, hh * hw * top_grad_value);
  }
  if (h_low >= 0 && w_high <= W - 1) {
    const int64_t off = (h_low * W + w_high) * stride;
    v2 = static_cast<acc_t>(value_l[off]);
    atomicAdd(grad_value_l + off, hh * lw * top_grad_value);
  }
  if (h_high <= H - 1 && w_low >= 0) {
    const int64_t off = (h_high * W + w_low) * stride;
    v3 = static_cast<acc_t>(value_l[off]);
    atomicAdd(grad_value_l + off, lh * hw * top_grad_value);
  }
  if (h_high <= H - 1 && w_high <= W - 1) {
    const int64_t off = (h_high * W + w_high) * stride;
    v4 = static_cast<acc_t>(value_l[off]);
    atomicAdd(grad_value_l + off, lh * lw * top_grad_value);
  }
  *sample = hh * hw * v1 + hh * lw * v2 + lh * hw * v3 + lh * lw * v4;
  *grad_h = hw * (v3 - v1) + lw * (v4 - v2);
  *grad_w = hh * (v2 - v1) + lh * (v4 - v3);
}

// One thread per output element (n, q, m, d) of output [N, Lq, M, D].
template <typename scalar_t>
__global__ void forward_kernel(
    Dims dm,
    const scalar_t* __restrict__ value,
    const int64_t* __restrict__ shapes,
    const int64_t* __restrict__ level_start,
    const at::opmath_type<scalar_t>* __restrict__ loc,
    const at::opmath_type<scalar_t>* __restrict__ attn,
    scalar_t* __restrict__ out) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t total = dm.N * dm.Lq * dm.M * dm.D;
  const int64_t stride = dm.M * dm.D;
  for (int64_t index = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; index < total;
       index += int64_t(blockDim.x) * gridDim.x) {
    const int64_t d = index % dm.D;
    const int64_t m = (index / dm.D) % dm.M;
    const int64_t nq = index / (dm.D * dm.M);
    const int64_t n = nq / dm.Lq;
    const scalar_t* value_nm = value + n * dm.S * stride + m * dm.D + d;
    int64_t j = (nq * dm.M + m) * dm.L * dm.P;  // index of (n, q, m, 0, 0) in attn
    acc_t acc = 0;
    for (int64_t l = 0; l < dm.L; ++l) {
      const int64_t H = shapes[2 * l], W = shapes[2 * l + 1];
      const scalar_t* value_l = value_nm + level_start[l] * stride;
      for (int64_t p = 0; p < dm.P; ++p, ++j) {
        const acc_t w_im = loc[2 * j] * W - acc_t(0.5);
        const acc_t h_im = loc[2 * j + 1] * H - acc_t(0.5);
        if (h_im > -1 && w_im > -1 && h_im < H && w_im < W) {
          acc += attn[j] * bilinear<scalar_t, acc_t>(value_l, H, W, stride, h_im, w_im);
        }
      }
    }
    out[index] = static_cast<scalar_t>(acc);
  }
}

// Sum of v over aligned groups of `group` lanes (a power of two <= 32); every lane of the warp must
// call it. Lane (d % group == 0) of each group holds the group's sum.
template <typename acc_t>
__device__ acc_t group_sum(acc_t v, int group) {
  for (int offset = group / 2; offset > 0; offset /= 2) {
    v += __shfl_down_sync(0xffffffffu, v, offset, group);
  }
  return v;
}

// One thread per (n, q, m, d) of grad_output. All threads of a block run the same number of loop
// iterations (the loop bound is rounded up to the block) so the warp shuffles are converged;
// threads past the end contribute zeros.
template <typename scalar_t>
__global__ void backward_kernel(
    Dims dm,
    int group,
    const scalar_t* __restrict__ value,
    const int64_t* __restrict__ shapes,
    const int64_t* __restrict__ level_start,
    const at::opmath_type<scalar_t>* __restrict__ loc,
    const at::opmath_type<scalar_t>* __restrict__ attn,
    const scalar_t* __restrict__ grad_out,
    at::opmath_type<scalar_t>* grad_value,
    at::opmath_type<scalar_t>* grad_loc,
    at::opmath_type<scalar_t>* grad_attn) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t total = dm.N * dm.Lq * dm.M * dm.D;
  const int64_t stride = dm.M * dm.D;
  for (int64_t base = blockIdx.x * int64_t(blockDim.x); base < total;
       base += int64_t(blockDim.x) * gridDim.x) {
    const int64_t index = base + threadIdx.x;
    const bool valid = index < total;
    const int64_t safe = valid ? index : total - 1;
    const int64_t d = safe % dm.D;
    const int64_t m = (safe / dm.D) % dm.M;
    const int64_t nq = safe / (dm.D * dm.M);
    const int64_t n = nq / dm.Lq;
    const acc_t top_grad = valid ? static_cast<acc_t>(grad_out[safe]) : acc_t(0);
    const int64_t value_offset = n * dm.S * stride + m * dm.D + d;
    int64_t j = (nq * dm.M + m) * dm.L * dm.P;
    for (int64_t l = 0; l < dm.L; ++l) {
      const int64_t H = shapes[2 * l], W = shapes[2 * l + 1];
      const int64_t level_offset = value_offset + level_start[l] * stride;
      for (int64_t p = 0; p < dm.P; ++p, ++j) {
        const acc_t w_im = loc[2 * j] * W - acc_t(0.5);
        const acc_t h_im = loc[2 * j + 1] * H - acc_t(0.5);
        const acc_t a = attn[j];
        acc_t sample = 0, grad_h = 0, grad_w = 0;
        if (valid && h_im > -1 && w_im > -1 && h_im < H && w_im < W) {
          bilinear_backward<scalar_t, acc_t>(
              value + level_offset, H, W, stride, h_im, w_im, top_grad * a,
              grad_value + level_offset, &sample, &grad_h, &grad_w);
        }
        const acc_t g_attn = group_sum<acc_t>(top_grad * sample, group);
        const acc_t g_x = group_sum<acc_t>(W * a * top_grad * grad_w, group);
        const acc_t g_y = group_sum<acc_t>(H * a * top_grad * grad_h, group);
        if (valid && d % group == 0) {
          atomicAdd(grad_attn + j, g_attn);
          atomicAdd(grad_loc + 2 * j, g_x);
          atomicAdd(grad_loc + 2 * j + 1, g_y);
        }
      }
    }
  }
}

// The level layout check of check_levels_cpu (ms_deform_attn.h), on the device: one thread; a
// failure is a device-side assertion, reported by CUDA at the next synchronisation. Launched before
// each kernel on the same stream, so it costs no host-device synchronisation.
__global__ void check_levels_kernel(
    const int64_t* __restrict__ shapes, const int64_t* __restrict__ level_start, int64_t L,
    int64_t S) {
  int64_t total = 0;
  for (int64_t l = 0; l < L; ++l) {
    CUDA_KERNEL_ASSERT_PRINTF(
        level_start[l] == total, "ms_deform_attn: level_start_index[%lld] = %lld, expected %lld",
        static_cast<long long>(l), static_cast<long long>(level_start[l]),
        static_cast<long long>(total));
    total += shapes[2 * l] * shapes[2 * l + 1];
  }
  CUDA_KERNEL_ASSERT_PRINTF(
      total == S, "ms_deform_attn: spatial_shapes add up to %lld, value.size(1) = %lld",
      static_cast<long long>(total), static_cast<long long>(S));
}

void check_levels(
    const at::Tensor& spatial_shapes, const at::Tensor& level_start_index, int64_t S,
    cudaStream_t stream) {
  check_levels_kernel<<<1, 1, 0, stream>>>(
      spatial_shapes.const_data_ptr<int64_t>(), level_start_index.const_data_ptr<int64_t>(),
      spatial_shapes.size(0), S);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

Dims get_dims(const at::Tensor& value, const at::Tensor& sampling_loc) {
  return {value.size(0), value.size(1), value.size(2), value.size(3),
          sampling_loc.size(3), sampling_loc.size(4), sampling_loc.size(1)};
}

}  // namespace

at::Tensor ms_deform_attn_cuda_forward(
    const at::Tensor& value,
    const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index,
    const at::Tensor& sampling_loc,
    const at::Tensor& attn_weight) {
  const c10::cuda::CUDAGuard device_guard(value.device());
  const Dims dm = get_dims(value, sampling_loc);
  auto output = at::empty({dm.N, dm.Lq, dm.M * dm.D}, value.options());
  const int64_t total = output.numel();
  const auto stream = c10::cuda::getCurrentCUDAStream();
  check_levels(spatial_shapes, level_start_index, dm.S, stream);
  if (total == 0) {
    return output;
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, value.scalar_type(), "ms_deform_attn_cuda_forward", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        forward_kernel<scalar_t><<<num_blocks(total), kThreads, 0, stream>>>(
            dm,
            value.const_data_ptr<scalar_t>(),
            spatial_shapes.const_data_ptr<int64_t>(),
            level_start_index.const_data_ptr<int64_t>(),
            sampling_loc.const_data_ptr<acc_t>(),
            attn_weight.const_data_ptr<acc_t>(),
            output.mutable_data_ptr<scalar_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
  return output;
}

std::vector<at::Tensor> ms_deform_attn_cuda_backward(
    const at::Tensor& value,
    const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index,
    const at::Tensor& sampling_loc,
    const at::Tensor& attn_weight,
    const at::Tensor& grad_output) {
  const c10::cuda::CUDAGuard device_guard(value.device());
  const Dims dm = get_dims(value, sampling_loc);
  // accumulated atomically, so zero-initialised, in the opmath dtype
  auto grad_value = at::zeros(value.sizes(), sampling_loc.options());
  auto grad_loc = at::zeros_like(sampling_loc);
  auto grad_attn = at::zeros_like(attn_weight);
  const int64_t total = grad_output.numel();
  // channel lanes summed by warp shuffles: aligned groups of D (or 32) lanes share (n, q, m)
  const bool pow2 = dm.D > 0 && (dm.D & (dm.D - 1)) == 0;
  const int group = pow2 ? static_cast<int>(std::min<int64_t>(dm.D, 32)) : 1;
  const auto stream = c10::cuda::getCurrentCUDAStream();
  check_levels(spatial_shapes, level_start_index, dm.S, stream);
  if (total > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(
        at::kHalf, at::kBFloat16, value.scalar_type(), "ms_deform_attn_cuda_backward", [&] {
          using acc_t = at::opmath_type<scalar_t>;
          backward_kernel<scalar_t><<<num_blocks(total), kThreads, 0, stream>>>(
              dm,
              group,
              value.const_data_ptr<scalar_t>(),
              spatial_shapes.const_data_ptr<int64_t>(),
              level_start_index.const_data_ptr<int64_t>(),
              sampling_loc.const_data_ptr<acc_t>(),
              attn_weight.const_data_ptr<acc_t>(),
              grad_output.const_data_ptr<scalar_t>(),
              grad_value.mutable_data_ptr<acc_t>(),
              grad_loc.mutable_data_ptr<acc_t>(),
              grad_attn.mutable_data_ptr<acc_t>());
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        });
  }
  return {grad_value.to(value.scalar_type()), grad_loc, grad_attn};
}

}  // namespace mask2former
