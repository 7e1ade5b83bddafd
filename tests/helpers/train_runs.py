"""Short training runs of a tiny Mask2Former on the synthetic panoptic dataset, for the reliability
tests: in this process (:func:`tiny_config`) or through ``tools/train_net.py`` in subprocesses
(:func:`train_net_command`, run by ``tests/engine/train_net_runner.py``)."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import torch
from detectron2.config import CfgNode

from mask2former.config import build_config

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs/quick_schedules/Panoptic-R50-instant.yaml"
RUNNER = ROOT / "tests/engine/train_net_runner.py"
TRAIN = "('m2f_synthetic_panoptic_train',)"

# The instant config (a narrow ResNet-50 with FrozenBN: statistics do not depend on the number
# of processes) shrunk to ~0.44 M parameters, 64x64 crops of the 96x96 synthetic images.
TINY_OPTS: List[str] = [
    *("MODEL.SEM_SEG_HEAD.NUM_CLASSES", "6"),
    *("MODEL.SEM_SEG_HEAD.CONVS_DIM", "32", "MODEL.SEM_SEG_HEAD.MASK_DIM", "32"),
    *("MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS", "1"),
    *("MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_DIM_FEEDFORWARD", "64"),
    *("MODEL.MASK_FORMER.HIDDEN_DIM", "32", "MODEL.MASK_FORMER.DIM_FEEDFORWARD", "64"),
    *("MODEL.MASK_FORMER.DEC_LAYERS", "3", "MODEL.MASK_FORMER.NUM_OBJECT_QUERIES", "8"),
    *("MODEL.MASK_FORMER.TRAIN_NUM_POINTS", "256"),
    *("INPUT.IMAGE_SIZE", "64", "INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "64"),
    *("DATASETS.TRAIN", TRAIN, "DATASETS.TEST", "()"),
    *("SOLVER.IMS_PER_BATCH", "2", "SOLVER.WARMUP_ITERS", "2", "SOLVER.STEPS", "(6,)"),
    *("DATALOADER.NUM_WORKERS", "0", "SEED", "0"),
]


def tiny_config(output_dir: Path, *opts: str) -> CfgNode:
    """The tiny config with ``OUTPUT_DIR`` and further ``KEY VALUE`` overrides."""
    return build_config(str(CONFIG), TINY_OPTS + ["OUTPUT_DIR", str(output_dir), *opts])


def train_net_command(
    output_dir: Path, flags: Sequence[str] = (), opts: Sequence[str] = ()
) -> List[str]:
    """``python train_net_runner.py FLAGS --config-file CONFIG <tiny opts> OUTPUT_DIR DIR OPTS``:
    ``flags`` are train_net's options (``--resume``, ``--num-gpus 2``), ``opts`` config pairs."""
    return [
        sys.executable,
        str(RUNNER),
        *flags,
        "--config-file",
        str(CONFIG),
        *TINY_OPTS,
        *("OUTPUT_DIR", str(output_dir)),
        *opts,
    ]


def subprocess_env(dataset_root: Path, **extra: str) -> Dict[str, str]:
    """Environment of a training subprocess: this checkout first on the path, the dataset root."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["DETECTRON2_DATASETS"] = str(dataset_root)
    env.update(extra)
    return env


def run_train_net(
    output_dir: Path,
    dataset_root: Path,
    flags: Sequence[str] = (),
    opts: Sequence[str] = (),
    timeout: float = 300,
    **env: str,
) -> subprocess.CompletedProcess:
    """Run :func:`train_net_command` to the end; the completed process (stdout + stderr)."""
    return subprocess.run(
        train_net_command(output_dir, flags, opts),
        env=subprocess_env(dataset_root, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


def run_concurrently(
    dataset_root: Path, runs: Sequence[Tuple[Path, Sequence[str], Sequence[str], Dict[str, str]]]
) -> List[Tuple[int, str]]:
    """Start every (output_dir, flags, opts, env) run at once; (return code, log) of each."""
    started = []
    for output_dir, flags, opts, env in runs:
        output_dir.parent.mkdir(parents=True, exist_ok=True)
        log_path = output_dir.parent / f"{output_dir.name}.log"
        log = open(log_path, "w")
        process = subprocess.Popen(
            train_net_command(output_dir, flags, opts),
            env=subprocess_env(dataset_root, **env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        started.append((process, log, log_path))
    results = []
    for process, log, log_path in started:
        code = process.wait(timeout=600)
        log.close()
        results.append((code, log_path.read_text()))
    return results


def load_weights(path: Path) -> Dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def differing_tensors(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor]) -> List[str]:
    """Names whose tensors are not bit-identical (or present in only one)."""
    assert sorted(a) == sorted(b), set(a) ^ set(b)
    return [k for k in a if not torch.equal(a[k], b[k])]


def finite_checkpoint(path: Path) -> bool:
    return all(
        torch.isfinite(t).all() for t in load_weights(path).values() if t.is_floating_point()
    )


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])
