"""What the benchmark scripts share: the machine facts recorded with every result (CPU model,
load average) and the JSON output (printed, and written to ``--out``)."""

import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Dict, Optional

__all__ = ["cpu_model", "machine_facts", "write_results"]


def cpu_model() -> str:
    """``Model name`` of ``lscpu`` (the processor name from /proc/cpuinfo if lscpu is missing)."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        key = "Model name:"
    except (OSError, subprocess.CalledProcessError):
        text, key = Path("/proc/cpuinfo").read_text(), "model name"
    lines = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith(key)]
    return lines[0] if lines else platform.processor()


def machine_facts() -> Dict[str, Any]:
    """The CPU model, its core count and the 1/5/15-minute load averages: timings taken on a
    loaded machine (load average above the core count) are slower than on an idle one."""
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def write_results(results: Dict[str, Any], out: Optional[Path]) -> None:
    """Print ``results`` as JSON and, with ``out``, write them there (creating its folder)."""
    text = json.dumps(results, indent=1)
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
