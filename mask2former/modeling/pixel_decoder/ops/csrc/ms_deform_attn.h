// Multi-scale deformable attention: input checks and dispatch to the CPU or CUDA kernels.
// Interface of Deformable DETR's MSDeformAttn op (Zhu et al., ICLR 2021;
// github.com/fundamentalvision/Deformable-DETR, Apache-2.0).
#pragma once
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>

#include <vector>

#include "cpu/ms_deform_attn_cpu.h"
#ifdef WITH_CUDA
#include "cuda/ms_deform_attn_cuda.h"
#endif

namespace mask2former {

inline bool with_cuda() {
#ifdef WITH_CUDA
  return true;
#else
  return false;
#endif
}

// The level layout: the H_l * W_l sum to S and level_start_index holds their running sums (ValueError
// in Python otherwise). Reads host memory: CPU tensors only.
inline void check_levels_cpu(
    const at::Tensor& spatial_shapes, const at::Tensor& level_start_index, int64_t S) {
  const int64_t* shapes = spatial_shapes.const_data_ptr<int64_t>();
  const int64_t* start = level_start_index.const_data_ptr<int64_t>();
  const int64_t L = spatial_shapes.size(0);
  int64_t total = 0;
  for (int64_t l = 0; l < L; ++l) {
    total += shapes[2 * l] * shapes[2 * l + 1];
  }
  TORCH_CHECK_VALUE(
      total == S, "ms_deform_attn: spatial_shapes ", spatial_shapes,
      " do not add up to value.size(1) = ", S);
  total = 0;
  for (int64_t l = 0; l < L; ++l) {
    TORCH_CHECK_VALUE(
        start[l] == total, "ms_deform_attn: level_start_index ", level_start_index,
        " does not match spatial_shapes ", spatial_shapes, " (level ", l, " starts at ", total,
        ")");
    total += shapes[2 * l] * shapes[2 * l + 1];
  }
}

// Shapes: value [N, S, M, D]; spatial_shapes [L, 2] and level_start_index [L] (int64);
// sampling_loc [N, Lq, M, L, P, 2]; attn_weight [N, Lq, M, L, P]. Locations and weights use the
// opmath dtype of value (float for half/bfloat16/float, double for double). All on one device.
inline void check_inputs(
    const at::Tensor& value,
    const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index,
    const at::Tensor& sampling_loc,
    const at::Tensor& attn_weight) {
  TORCH_CHECK(value.dim() == 4, "ms_deform_attn: value must be [N, S, M, D], got ", value.sizes());
  TORCH_CHECK(
      sampling_loc.dim() == 6 && sampling_loc.size(5) == 2,
      "ms_deform_attn: sampling_locations must be [N, Lq, M, L, P, 2], got ", sampling_loc.sizes());
  const int64_t N = value.size(0), S = value.size(1), M = value.size(2);
  const int64_t Lq = sampling_loc.size(1), L = sampling_loc.size(3), P = sampling_loc.size(4);
  TORCH_CHECK(
      sampling_loc.size(0) == N && sampling_loc.size(2) == M,
      "ms_deform_attn: sampling_locations ", sampling_loc.sizes(), " do not match value ",
      value.sizes(), " in N or M");
  TORCH_CHECK(
      attn_weight.sizes() == at::IntArrayRef({N, Lq, M, L, P}),
      "ms_deform_attn: attention_weights must be [N, Lq, M, L, P] = ", at::IntArrayRef({N, Lq, M, L, P}),
      ", got ", attn_weight.sizes());
  TORCH_CHECK(
      spatial_shapes.dim() == 2 && spatial_shapes.size(0) == L && spatial_shapes.size(1) == 2,
      "ms_deform_attn: spatial_shapes must be [L=", L, ", 2], got ", spatial_shapes.sizes());
  TORCH_CHECK(
      level_start_index.dim() == 1 && level_start_index.size(0) == L,
      "ms_deform_attn: level_start_index must be [L=", L, "], got ", level_start_index.sizes());
  TORCH_CHECK(
      spatial_shapes.scalar_type() == at::kLong && level_start_index.scalar_type() == at::kLong,
      "ms_deform_attn: spatial_shapes and level_start_index must be int64");
  const auto opmath = at::toOpMathType(value.scalar_type());
  TORCH_CHECK(
      sampling_loc.scalar_type() == opmath && attn_weight.scalar_type() == opmath,
      "ms_deform_attn: for value of dtype ", value.scalar_type(),
      " sampling_locations and attention_weights must be ", opmath, ", got ",
      sampling_loc.scalar_type(), " and ", attn_weight.scalar_type());
  for (const at::Tensor* t : {&spatial_shapes, &level_start_index, &sampling_loc, &attn_weight}) {
    TORCH_CHECK(
        t->device() == value.device(), "ms_deform_attn: all inputs must be on ", value.device(),
        ", got one on ", t->device());
  }
  if (spatial_shapes.is_cpu()) {
    check_levels_cpu(spatial_shapes.contiguous(), level_start_index.contiguous(), S);
  }
  // On CUDA, reading the two tensors here would synchronise the host with the device: the kernel
  // launchers check them on the device instead (a device-side assertion, reported by CUDA at the
  // next synchronisation).
}

inline at::Tensor ms_deform_attn_forward(
    const at::Tensor& value,
    const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index,
    const at::Tensor& sampling_loc,
    const at::Tensor& attn_weight,
    int64_t im2col_step) {
  check_inputs(value, spatial_shapes, level_start_index, sampling_loc, attn_weight);
  TORCH_CHECK(im2col_step > 0, "ms_deform_attn: im2col_step must be positive, got ", im2col_step);
  const auto v = value.contiguous(), shapes = spatial_shapes.contiguous();
  const auto start = level_start_index.contiguous(), loc = sampling_loc.contiguous();
  const auto attn = attn_weight.contiguous();
  if (value.is_cuda()) {
#ifdef WITH_CUDA
    return ms_deform_attn_cuda_forward(v, shapes, start, loc, attn);
#else
    TORCH_CHECK(false, "ms_deform_attn: mask2former._C was compiled without CUDA support");
#endif
  }
  TORCH_CHECK(value.is_cpu(), "ms_deform_attn: unsupported device ", value.device());
  return ms_deform_attn_cpu_forward(v, shapes, start, loc, attn);
}

// Returns {grad_value, grad_sampling_loc, grad_attn_weight}, shaped and typed like the inputs.
inline std::vector<at::Tensor> ms_deform_attn_backward(
    const at::Tensor& value,
    const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index,
    const at::Tensor& sampling_loc,
    const at::Tensor& attn_weight,
    const at::Tensor& grad_output,
    int64_t im2col_step) {
  check_inputs(value, spatial_shapes, level_start_index, sampling_loc, attn_weight);
  TORCH_CHECK(im2col_step > 0, "ms_deform_attn: im2col_step must be positive, got ", im2col_step);
  const int64_t N = value.size(0), M = value.size(2), D = value.size(3);
  const int64_t Lq = sampling_loc.size(1);
  TORCH_CHECK(
      grad_output.sizes() == at::IntArrayRef({N, Lq, M * D}) &&
          grad_output.scalar_type() == value.scalar_type() && grad_output.device() == value.device(),
      "ms_deform_attn: grad_output must be [N, Lq, M*D] = ", at::IntArrayRef({N, Lq, M * D}),
      " of value's dtype and device, got ", grad_output.sizes(), " ", grad_output.scalar_type());
  const auto v = value.contiguous(), shapes = spatial_shapes.contiguous();
  const auto start = level_start_index.contiguous(), loc = sampling_loc.contiguous();
  const auto attn = attn_weight.contiguous(), grad = grad_output.contiguous();
  if (value.is_cuda()) {
#ifdef WITH_CUDA
    return ms_deform_attn_cuda_backward(v, shapes, start, loc, attn, grad);
#else
    TORCH_CHECK(false, "ms_deform_attn: mask2former._C was compiled without CUDA support");
#endif
  }
  TORCH_CHECK(value.is_cpu(), "ms_deform_attn: unsupported device ", value.device());
  return ms_deform_attn_cpu_backward(v, shapes, start, loc, attn, grad);
}

}  // namespace mask2former
