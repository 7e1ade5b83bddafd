// Multi-scale deformable attention, CUDA kernels. Port of the im2col/col2im design of Deformable DETR
// (Zhu et al., ICLR 2021; github.com/fundamentalvision/Deformable-DETR, Apache-2.0), extended to
// half and bfloat16.
#pragma once
#include <ATen/ATen.h>

#include <vector>

namespace mask2former {

// Same contract as the CPU kernels (see cpu/ms_deform_attn_cpu.h); all tensors contiguous on one GPU.
at::Tensor ms_deform_attn_cuda_forward(
    const at::Tensor& value,
    const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index,
    const at::Tensor& sampling_loc,
    const at::Tensor& attn_weight);

std::vector<at::Tensor> ms_deform_attn_cuda_backward(
    const at::Tensor& value,
    const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index,
    const at::Tensor& sampling_loc,
    const at::Tensor& attn_weight,
    const at::Tensor& grad_output);

}  // namespace mask2former
