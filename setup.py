"""Install mask2former and compile its multi-scale deformable attention op as ``mask2former._C``.

The CPU kernels are always built (``-O3``, OpenMP; their loops are multi-versioned for AVX-512 /
AVX2, see ``csrc/cpu``). The CUDA kernels are added, with ``WITH_CUDA`` defined, when a GPU and
``CUDA_HOME`` are present or when ``FORCE_CUDA=1`` (e.g. on a CPU-only CI machine with nvcc). Their
GPU architectures (``TORCH_CUDA_ARCH_LIST``) are, in order: the variable if set; else the visible
GPUs'; else those of :data:`DEFAULT_CUDA_ARCHS` that the installed nvcc can compile, with PTX for
the newest (which later GPUs compile at load time). Install with
``pip install --no-build-isolation --no-deps -e .`` (see ``scripts/setup_env.sh``).
"""

import glob
import os
import re
import subprocess

import torch
from setuptools import find_packages, setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

CSRC = os.path.join("mask2former", "modeling", "pixel_decoder", "ops", "csrc")
# GPUs researchers use: V100 (7.0), T4 (7.5), A100 (8.0), A10/RTX 30xx (8.6), L4/L40/RTX 40xx
# (8.9), H100 (9.0). nvcc 13 no longer compiles for 7.0: a V100 needs a CUDA 12 toolkit (and a
# PyTorch built for it), with which 7.0 is included.
DEFAULT_CUDA_ARCHS = ("7.0", "7.5", "8.0", "8.6", "8.9", "9.0")


def _build_cuda() -> bool:
    if os.environ.get("FORCE_CUDA", "0") == "1":
        return True
    return torch.cuda.is_available() and CUDA_HOME is not None


def _nvcc_archs() -> set:
    """Compute capabilities ("8.6") the installed nvcc can compile; empty if unknown."""
    nvcc = os.path.join(CUDA_HOME or "", "bin", "nvcc")
    try:
        out = subprocess.run([nvcc, "--list-gpu-arch"], capture_output=True, text=True).stdout
    except OSError:
        return set()
    return {f"{m[:-1]}.{m[-1]}" for m in re.findall(r"compute_(\d+)", out)}


def cuda_arch_list() -> str:
    """The ``TORCH_CUDA_ARCH_LIST`` of the build (see the module docstring)."""
    if os.environ.get("TORCH_CUDA_ARCH_LIST"):
        return os.environ["TORCH_CUDA_ARCH_LIST"]
    if torch.cuda.is_available():
        capabilities = {
            torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())
        }
        archs = [f"{major}.{minor}" for major, minor in sorted(capabilities)]
    else:
        supported = _nvcc_archs()
        archs = [a for a in DEFAULT_CUDA_ARCHS if not supported or a in supported]
    return ";".join(archs[:-1] + [archs[-1] + "+PTX"])


def get_extensions() -> list:
    here = os.path.dirname(os.path.abspath(__file__))
    sources = [os.path.join(CSRC, "vision.cpp")]
    sources += sorted(glob.glob(os.path.join(CSRC, "cpu", "*.cpp")))
    extra_compile_args = {"cxx": ["-O3", "-fopenmp"]}
    define_macros = []
    extension = CppExtension
    if _build_cuda():
        extension = CUDAExtension
        sources += sorted(glob.glob(os.path.join(CSRC, "cuda", "*.cu")))
        define_macros.append(("WITH_CUDA", None))
        # nvcc compiles the architectures in parallel threads (MAX_JOBS, as ninja's jobs).
        extra_compile_args["nvcc"] = ["-O3", "--threads", os.environ.get("MAX_JOBS", "2")]
        arch_list = os.environ["TORCH_CUDA_ARCH_LIST"] = cuda_arch_list()
        print(f"mask2former: CUDA kernels for TORCH_CUDA_ARCH_LIST={arch_list}")
    return [
        extension(
            "mask2former._C",
            sources=sources,
            include_dirs=[os.path.join(here, CSRC)],
            define_macros=define_macros,
            extra_compile_args=extra_compile_args,
            extra_link_args=["-fopenmp"],
            libraries=["gomp"],
        )
    ]


def read_extras(path: str = "requirements-optional.txt") -> dict:
    """``{extra: [requirement, ...]}`` from the ``# extras: a, b`` comments of ``path``."""
    extras: dict = {}
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), path)) as f:
        for line in f:
            requirement, _, comment = line.partition("#")
            if requirement.strip() and "extras:" in comment:
                for extra in comment.split("extras:", 1)[1].split(","):
                    extras.setdefault(extra.strip(), []).append(requirement.strip())
    return extras


setup(
    name="mask2former",
    version="0.1.0",
    description="Mask2Former (Cheng et al., CVPR 2022) on detectron2",
    packages=find_packages(exclude=("configs", "tests*")),
    python_requires=">=3.10",
    extras_require=read_extras(),
    ext_modules=get_extensions(),
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
