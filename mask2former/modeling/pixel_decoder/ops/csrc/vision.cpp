// Python bindings of mask2former._C: the multi-scale deformable attention op of Deformable DETR
// (Zhu et al., ICLR 2021; github.com/fundamentalvision/Deformable-DETR, Apache-2.0).
#include <torch/extension.h>

#include "ms_deform_attn.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def(
      "ms_deform_attn_forward", &mask2former::ms_deform_attn_forward,
      "MS deformable attention forward (CPU/CUDA)", py::arg("value"), py::arg("spatial_shapes"),
      py::arg("level_start_index"), py::arg("sampling_locations"), py::arg("attention_weights"),
      py::arg("im2col_step"));
  m.def(
      "ms_deform_attn_backward", &mask2former::ms_deform_attn_backward,
      "MS deformable attention backward (CPU/CUDA): (grad_value, grad_sampling_locations, "
      "grad_attention_weights)",
      py::arg("value"), py::arg("spatial_shapes"), py::arg("level_start_index"),
      py::arg("sampling_locations"), py::arg("attention_weights"), py::arg("grad_output"),
      py::arg("im2col_step"));
  m.def("with_cuda", &mask2former::with_cuda, "Whether the CUDA kernels were compiled");
}
