"""Arithmetic precision by capability: `trainer.precision=auto` picks bf16 autocast on a CPU
where it is measurably faster than fp32, fp32 elsewhere.

CPUs differ: on AMD EPYC parts without bf16 instructions a bf16 matmul is ~100× slower than
fp32; on Zen 4 EPYCs (avx512_bf16) and Intel Xeons with AMX it is 2.5–6× faster. The probe
times what the policy spends its time on, a SmolLM2-shaped MLP block (576 → 1536 → 576 over
1,024 rows) forward and backward, in fp32 and under bf16 autocast, and chooses bf16 when it
is at least `FASTER` times faster. The result is stored per CPU model, bf16 feature flags and
torch version under the cache directory (`precision/`), so every run on one machine resolves
`auto` alike; the resolved value replaces `auto` before anything else is built, so it is the
run's param `trainer.precision`, part of its identity and of the key of every artifact a
policy's arithmetic shapes (stages.model_keys).

A run in bf16-mixed computes its policy's forwards (sampling, log-probs, training) under
autocast, Lightning's for training and `autocast` here for the rest; the judges' encoders
stay in fp32 (`fp32`), so gold rewards compare across precisions. fp32 stays the default:
figures meant to compare across machines (the study, the benchmarks' bars) use it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

AUTO = "auto"
FP32 = "32-true"
BF16 = "bf16-mixed"
FASTER = 1.25  # bf16 must beat fp32 by this factor: a marginal win is not worth the rounding


# CPU features that decide bf16 speed: a virtual machine may name every EPYC "AMD EPYC".
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile", "avx512f", "avx2")


def cpu_model() -> str:
    """The CPU's model name and its bf16-relevant feature flags (/proc/cpuinfo; else the
    platform's processor string)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("model name")),
                platform.machine())
    flags = next((set(line.split(":", 1)[1].split()) for line in lines if line.startswith("flags")), set())
    present = [f for f in BF16_FLAGS if f in flags]
    return f"{name} ({' '.join(present)})" if present else name


def _time(step: Any, rounds: int = 3) -> float:
    step()  # warm-up: kernels chosen, memory allocated
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    return best


def probe(rows: int = 1024, hidden: int = 576, inner: int = 1536) -> dict[str, Any]:
    """Milliseconds for one forward and backward of an MLP block in fp32 and under bf16
    autocast on the CPU (the best of 3 after a warm-up), and their ratio."""
    generator = torch.Generator().manual_seed(0)
    up = torch.randn(hidden, inner, generator=generator, requires_grad=True)
    down = torch.randn(inner, hidden, generator=generator, requires_grad=True)
    x = torch.randn(rows, hidden, generator=generator)

    def step() -> None:
        out = torch.nn.functional.silu(x @ up) @ down
        out.float().square().mean().backward()
        up.grad = down.grad = None

    def bf16_step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            step()

    fp32, bf16 = _time(step), _time(bf16_step)
    return {"fp32_ms": round(1e3 * fp32, 3), "bf16_ms": round(1e3 * bf16, 3), "bf16_speedup": round(fp32 / bf16, 3)}


def resolve(precision: Any, accelerator: str, cache_dir: Path) -> tuple[Any, dict[str, Any] | None]:
    """`precision` as Lightning takes it: `auto` resolved (on a CPU by the stored or a new
    probe; on an accelerator bf16-mixed), anything else unchanged. Returns it and the probe
    that decided (None when none did)."""
    if precision != AUTO:
        return precision, None
    if accelerator not in ("cpu",):
        return BF16, None
    machine = {"cpu": cpu_model(), "torch": torch.__version__}
    path = cache_dir / "precision" / f"{hashlib.sha256(json.dumps(machine, sort_keys=True).encode()).hexdigest()[:16]}.json"
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        found = None
    if not isinstance(found, dict) or "choice" not in found:
        found = machine | probe()
        found["choice"] = BF16 if found["bf16_speedup"] >= FASTER else FP32
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(found, indent=1) + "\n")
        tmp.replace(path)  # whole or absent: a concurrent run reads one or the other
        log.info("trainer.precision=auto: bf16 autocast runs an MLP block %.2fx as fast as fp32 on %s: %s "
                 "(stored in %s)", found["bf16_speedup"], found["cpu"], found["choice"], path)
    return found["choice"], found


def autocast(precision: Any, accelerator: str = "cpu") -> Any:
    """The autocast context a run's own forwards (outside Lightning's training steps) run in:
    bf16 for bf16-mixed, fp16 for 16-mixed, none otherwise; on the device Lightning's
    `accelerator` setting names (gpu: cuda; auto: cuda when there is one)."""
    device_type = {"gpu": "cuda", "cuda": "cuda", "mps": "mps"}.get(str(accelerator), "cpu")
    if accelerator == "auto" and torch.cuda.is_available():
        device_type = "cuda"
    text = str(precision)
    if text in ("bf16-mixed", "bf16"):
        return torch.autocast(device_type, dtype=torch.bfloat16)
    if text in ("16-mixed", "16"):
        return torch.autocast(device_type, dtype=torch.float16)
    return nullcontext()


@contextmanager
def fp32() -> Iterator[None]:
    """Autocast off inside (a judge's encoder: gold rewards do not depend on the run's precision)."""
    with torch.autocast("cpu", enabled=False):
        if torch.cuda.is_available():
            with torch.autocast("cuda", enabled=False):
                yield
        else:
            yield
