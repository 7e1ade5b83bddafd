"""Run the official implementation's benchmark driver with CPU-time and memory instrumentation.

Executed by ``_bench_common.run_official`` in its own interpreter, with the official package first
on ``PYTHONPATH`` and the cwd outside this project; it imports nothing from this project. It loads
``<official-root>/_bench/run_official.py`` (the driver that builds the official model, loads
weights, times ``MaskFormer.forward`` in eval mode or a training step) and adds what the driver
does not report:

* the process CPU time (all threads) of each timed iteration, next to its wall time: the
  driver's ``time.perf_counter`` is wrapped to also read ``time.process_time``;
* the peak resident memory of the measured work above the memory before it (``VmHWM`` reset
  through ``/proc/self/clear_refs`` after the model is built);
* ``--batch-pth``: a training batch saved by our benchmark replaces the driver's synthetic one,
  so both implementations train on the same tensors.

    python _official_driver.py --official-root ROOT --json-out OUT.json [--batch-pth B.pth] \\
        -- <run_official.py arguments: --model, --mode eval|train, --weights, --input-pth, ...>
"""

import argparse
import json
import sys
import time
import types
from pathlib import Path


def status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official-root", required=True)
    parser.add_argument("--json-out", required=True)
    parser.add_argument("--batch-pth", default="")
    known, rest = parser.parse_known_args()
    rest = [a for a in rest if a != "--"]
    sys.path.insert(0, str(Path(known.official_root) / "_bench"))
    import run_official as driver  # installs the official CPU shims
    import torch

    clock = []  # (wall, cpu) at each of the driver's perf_counter calls

    def perf_counter() -> float:
        wall = time.perf_counter()
        clock.append((wall, time.process_time()))
        return wall

    driver.time = types.SimpleNamespace(perf_counter=perf_counter)
    if known.batch_pth:
        batch = torch.load(known.batch_pth, weights_only=False)
        driver.synthetic_batch = lambda args, num_classes: batch

    args = driver.parse_args(rest)
    torch.set_num_threads(args.threads)
    cfg, model, package = driver.build(args)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM := VmRSS
    rss_before = status_kb("VmRSS")
    result = {"mask2former_file": package, "threads": torch.get_num_threads()}
    if args.mode == "eval":
        result["eval"] = driver.run_eval(args, model)
        pairs = [(clock[2 * i], clock[2 * i + 1]) for i in range(len(clock) // 2)]
        result["eval"]["cpu_s"] = [b[1] - a[1] for a, b in pairs][args.eval_warmup :]
    elif args.mode == "train":
        result["train"] = driver.run_train(args, cfg, model)
        ticks = [clock[4 * i : 4 * i + 4] for i in range(len(clock) // 4)][args.train_warmup :]
        for row, (t0, t1, t2, t3) in zip(result["train"]["iters"], ticks):
            row.update(
                forward_loss_cpu_s=t1[1] - t0[1],
                backward_cpu_s=t2[1] - t1[1],
                step_cpu_s=t3[1] - t2[1],
                total_cpu_s=t3[1] - t0[1],
            )
    else:
        raise ValueError(f"--mode must be eval or train, got {args.mode!r}")
    result["peak_extra_mb"] = (status_kb("VmHWM") - rss_before) / 1024
    Path(known.json_out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
