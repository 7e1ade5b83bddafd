// Multi-scale deformable attention, CPU kernels (ATen + OpenMP through at::parallel_for).
// Algorithm from Deformable DETR (Zhu et al., ICLR 2021; github.com/fundamentalvision/Deformable-DETR,
// Apache-2.0): bilinear sampling with zero padding and align_corners=False, weighted by attention.
#pragma once
#include <ATen/ATen.h>

#include <vector>

namespace mask2former {

// value [N, S, M, D] (float, double, half or bfloat16); sampling_loc [N, Lq, M, L, P, 2] and
// attn_weight [N, Lq, M, L, P] in the float "opmath" type of value (double for double, else float);
// spatial_shapes [L, 2] and level_start_index [L] int64. Returns [N, Lq, M*D] in value's dtype.
at::Tensor ms_deform_attn_cpu_forward(
    const at::Tensor& value,
    const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index,
    const at::Tensor& sampling_loc,
    const at::Tensor& attn_weight);

// Returns {grad_value [N, S, M, D] (value's dtype), grad_sampling_loc, grad_attn_weight (opmath)}.
std::vector<at::Tensor> ms_deform_attn_cpu_backward(
    const at::Tensor& value,
    const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index,
    const at::Tensor& sampling_loc,
    const at::Tensor& attn_weight,
    const at::Tensor& grad_output);

}  // namespace mask2former
