"""Install mask2former and compile its multi-scale deformable attention op as ``mask2former._C``.

The CPU kernels are always built (``-O3``, OpenMP). The CUDA kernels are added, with ``WITH_CUDA``
defined, when a GPU and ``CUDA_HOME`` are present or when ``FORCE_CUDA=1`` (e.g. on a CPU-only CI
machine with nvcc; set ``TORCH_CUDA_ARCH_LIST``). Install with
``pip install --no-build-isolation --no-deps -e .`` (see ``scripts/setup_env.sh``).
"""

import glob
import os

import torch
from setuptools import find_packages, setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

CSRC = os.path.join("mask2former", "modeling", "pixel_decoder", "ops", "csrc")


def _build_cuda() -> bool:
    if os.environ.get("FORCE_CUDA", "0") == "1":
        return True
    return torch.cuda.is_available() and CUDA_HOME is not None


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
        extra_compile_args["nvcc"] = ["-O3"]
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
