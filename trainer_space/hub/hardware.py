"""The flavor catalogue: one source of truth for hardware names, GPUs, memory, speed and prices.

Prices and VRAM come from the Hub (`HfApi.list_jobs_hardware()`) when it answers; the built-in
table below is the fallback so that nothing goes blank when the Hub cannot be reached. Peak
throughput (dense bf16/fp16 tensor TFLOP/s per GPU, from the vendors' data sheets) is ours: the
Hub does not publish it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..settings import get_settings
from .cache import TTLCache

# dense (no sparsity) peak tensor throughput per GPU, TFLOP/s, in the best precision the GPU trains in
# sources: NVIDIA data sheets (T4: 65 fp16; L4: 121 bf16; A10G: 70 bf16 (AWS/NVIDIA A10 125 is with
# sparsity-less fp16 at boost, A10G clocks lower); L40S: 362 bf16; A100: 312 bf16; H100/H200: 989 bf16;
# RTX PRO 6000 Blackwell: ~500 bf16)
GPU_TFLOPS: dict[str, float] = {
    "T4": 65.0,
    "L4": 121.0,
    "A10G": 70.0,
    "L40S": 362.0,
    "A100": 312.0,
    "H100": 989.0,
    "H200": 989.0,
    "RTX PRO 6000": 500.0,
}
# memory bandwidth per GPU, GB/s (NVIDIA data sheets: T4 320, L4 300, A10G 600, L40S 864, A100 80GB SXM 2039,
# H100 SXM 3350, H200 4800, RTX PRO 6000 Blackwell 1792): decoding speed (GRPO generation) and optimizer steps
GPU_BANDWIDTH_GBS: dict[str, float] = {
    "T4": 320.0,
    "L4": 300.0,
    "A10G": 600.0,
    "L40S": 864.0,
    "A100": 2039.0,
    "H100": 3350.0,
    "H200": 4800.0,
    "RTX PRO 6000": 1792.0,
}
# GPUs without bf16 support train in fp16 (T4 is Turing)
NO_BF16 = {"T4"}
# Training on a CPU (this machine, Local backend): fp32 matrix throughput per core and memory bandwidth. Assumptions
# for a recent x86 core with AVX2/AVX-512 in PyTorch (oneDNN); a CPU estimate is a rough one, and says so.
CPU_TFLOPS_PER_CORE = 0.05
CPU_BANDWIDTH_GBS = 20.0
LOCAL_FLAVOR = "local"  # this machine (Local backend): free, its GPUs or its CPU
# CUDA compute capability (major * 10 + minor), from NVIDIA's CUDA GPUs list: which kernels a GPU can run
GPU_COMPUTE_CAPABILITY: dict[str, int] = {
    "T4": 75,
    "L4": 89,
    "A10G": 86,
    "L40S": 89,
    "A100": 80,
    "H100": 90,
    "H200": 90,
    "RTX PRO 6000": 120,
}


@dataclass(frozen=True)
class Flavor:
    name: str
    pretty_name: str
    gpus: int  # 0 for CPU flavors
    gpu_model: str | None
    vram_gb: float  # per GPU
    cpu: int
    ram_gb: float
    disk_gb: float
    usd_per_hour: float

    @property
    def is_gpu(self) -> bool:
        return self.gpus > 0

    @property
    def total_vram_gb(self) -> float:
        return self.vram_gb * self.gpus

    @property
    def is_local(self) -> bool:
        """This machine (the Local backend), rather than a Jobs flavor."""
        return self.name == LOCAL_FLAVOR

    @property
    def trains(self) -> bool:
        """Whether the estimate lists it: Jobs GPU flavors, and this machine (GPU or CPU)."""
        return self.is_gpu or self.is_local

    @property
    def memory_gb(self) -> float:
        """Memory a training process may use per device: a GPU's VRAM, or the machine's RAM when it has none."""
        return self.vram_gb if self.is_gpu else self.ram_gb

    @property
    def tflops(self) -> float:
        """Peak dense tensor TFLOP/s per GPU; for a CPU, the whole processor's fp32 figure (assumption)."""
        return GPU_TFLOPS.get(self.gpu_model or "", 0.0) if self.is_gpu else self.cpu * CPU_TFLOPS_PER_CORE

    @property
    def bandwidth_gbs(self) -> float:
        """Memory bandwidth per GPU (or of the CPU's memory), GB/s."""
        return GPU_BANDWIDTH_GBS.get(self.gpu_model or "", 0.0) if self.is_gpu else CPU_BANDWIDTH_GBS

    @property
    def compute_capability(self) -> int | None:
        """major * 10 + minor of the flavor's GPU (None for CPU flavors and unknown GPUs)."""
        return GPU_COMPUTE_CAPABILITY.get(self.gpu_model or "")

    @property
    def supports_bf16(self) -> bool:
        return self.is_gpu and (self.gpu_model or "") not in NO_BF16


def _f(name, pretty, gpus, model, vram, cpu, ram, usd_h, disk=50.0) -> Flavor:
    return Flavor(name, pretty, gpus, model, vram, cpu, ram, disk, usd_h)


# Built-in fallback (public pricing page, November 2026). Used only when the Hub cannot be reached.
FALLBACK_FLAVORS: tuple[Flavor, ...] = (
    _f("cpu-basic", "CPU Basic", 0, None, 0, 2, 16, 0.01),
    _f("cpu-upgrade", "CPU Upgrade", 0, None, 0, 8, 32, 0.03),
    _f("cpu-performance", "CPU Performance", 0, None, 0, 32, 256, 0.30),
    _f("cpu-xl", "CPU XL", 0, None, 0, 16, 124, 1.00),
    _f("t4-small", "Nvidia T4 - small", 1, "T4", 16, 4, 15, 0.40),
    _f("t4-medium", "Nvidia T4 - medium", 1, "T4", 16, 8, 30, 0.60),
    _f("l4x1", "1x Nvidia L4", 1, "L4", 24, 8, 30, 0.80),
    _f("l4x4", "4x Nvidia L4", 4, "L4", 24, 48, 186, 3.80),
    _f("a10g-small", "Nvidia A10G - small", 1, "A10G", 24, 4, 15, 1.00),
    _f("a10g-large", "Nvidia A10G - large", 1, "A10G", 24, 12, 46, 1.50),
    _f("a10g-largex2", "2x Nvidia A10G - large", 2, "A10G", 24, 24, 92, 3.00),
    _f("a10g-largex4", "4x Nvidia A10G - large", 4, "A10G", 24, 48, 184, 5.00),
    _f("l40sx1", "1x Nvidia L40S", 1, "L40S", 48, 8, 62, 1.80),
    _f("l40sx4", "4x Nvidia L40S", 4, "L40S", 48, 48, 382, 8.30),
    _f("l40sx8", "8x Nvidia L40S", 8, "L40S", 48, 192, 1534, 23.50),
    _f("a100-large", "Nvidia A100 - large", 1, "A100", 80, 12, 142, 2.50),
    _f("a100x4", "4x Nvidia A100", 4, "A100", 80, 48, 568, 10.00),
    _f("a100x8", "8x Nvidia A100", 8, "A100", 80, 96, 1136, 20.00),
    _f("h200", "1x Nvidia H200", 1, "H200", 141, 23, 256, 5.00),
    _f("h200x2", "2x Nvidia H200", 2, "H200", 141, 46, 512, 10.00),
    _f("h200x4", "4x Nvidia H200", 4, "H200", 141, 92, 1024, 20.00),
    _f("h200x8", "8x Nvidia H200", 8, "H200", 141, 184, 2048, 40.00),
)

FLAVOR_NAMES: frozenset[str] = frozenset(f.name for f in FALLBACK_FLAVORS) | frozenset(
    {"rtx-pro-6000", "rtx-pro-6000x2", "rtx-pro-6000x4", "rtx-pro-6000x8"}
)


def _gb(text: str | None) -> float:
    m = re.search(r"([\d.]+)\s*(GB|GiB|TB)?", str(text or ""))
    if not m:
        return 0.0
    value = float(m.group(1))
    return value * 1024 if (m.group(2) or "").startswith("T") else value


def _gpu_model(model: str | None) -> str | None:
    if not model:
        return None
    text = model.upper()
    for known in sorted(GPU_TFLOPS, key=len, reverse=True):
        if known in text:
            return known
    return model


def flavor_from_hub(item) -> Flavor:
    """Build a `Flavor` from huggingface_hub's `JobHardwareInfo`."""
    acc = item.accelerator
    gpus = int(getattr(acc, "quantity", 0) or 0) if acc else 0
    fallback = next((f for f in FALLBACK_FLAVORS if f.name == item.name), None)
    cpu = int(re.sub(r"\D", "", str(item.cpu)) or 0)
    return Flavor(
        name=item.name,
        pretty_name=item.pretty_name,
        gpus=gpus,
        gpu_model=_gpu_model(getattr(acc, "model", None)) if acc else None,
        vram_gb=_gb(getattr(acc, "vram", None)) if acc else 0.0,
        cpu=cpu,
        ram_gb=_gb(item.ram),
        disk_gb=_gb(item.ephemeral_storage) or (fallback.disk_gb if fallback else 50.0),
        usd_per_hour=float(item.unit_cost_usd) * (60 if item.unit_label == "minute" else 1),
    )


_TTL_S = 600.0
_FAILED_TTL_S = 60.0  # after a failure, use the fallback for a minute instead of waiting on the Hub each time
_CACHE: TTLCache[tuple[tuple[Flavor, ...], bool]] = TTLCache(ttl_s=_TTL_S, max_items=1)


def _fallback() -> tuple[Flavor, ...]:
    return tuple(sorted(FALLBACK_FLAVORS, key=lambda f: (f.usd_per_hour, f.name)))


def get_flavors(*, use_hub: bool = True) -> tuple[tuple[Flavor, ...], bool]:
    """All flavors, sorted by price, and whether the figures came from the Hub.

    The hardware list is public: it is read without any token (so one visitor's bad token can never make
    everyone get the built-in table) and cached process-wide for 10 minutes. When the Hub cannot be read the
    built-in table is returned, and the Hub is not asked again for a minute.
    """
    if not use_hub:
        return _fallback(), False
    cached = _CACHE.get("flavors")
    if cached is not None:
        return cached
    try:
        from huggingface_hub import HfApi

        settings = get_settings()
        items = HfApi(endpoint=settings.endpoint).list_jobs_hardware(token=False)
        flavors = tuple(sorted((flavor_from_hub(i) for i in items), key=lambda f: (f.usd_per_hour, f.name)))
    except Exception as err:  # the Hub is unreachable or answered oddly: fall back, never go blank
        if getattr(err, "budget_spent", False):  # not asked at all (this request's reads had failed): not cached
            return _fallback(), False
        flavors = ()
    if flavors:
        return _CACHE.put("flavors", (flavors, True))
    return _CACHE.put("flavors", (_fallback(), False), ttl_s=_FAILED_TTL_S)


def get_flavor(name: str, flavors: tuple[Flavor, ...] | None = None) -> Flavor | None:
    """`name` in `flavors` (the Hub's list), else in the built-in table."""
    for f in (*(flavors or ()), *FALLBACK_FLAVORS):
        if f.name == name:
            return f
    return None


def billed_price(name: str, flavors: tuple[Flavor, ...], from_hub: bool) -> tuple[float | None, str]:
    """The hourly price a job on `name` is billed at, as the Hub lists it, or (None, why it is not known).

    Only the Hub's own list prices paid work: a flavor it does not list, or lists at $0, has no known price, and
    when the list could not be read the built-in figures are estimates, never a price to bound a job's cost with.
    """
    if not from_hub:
        built_in = get_flavor(name)
        figure = f" (the built-in figure, ${built_in.usd_per_hour:,.2f}/h, is for estimates only)" if built_in else ""
        return None, (
            f"The Hub's price list could not be read just now, so the price of {name} is not known{figure}: nothing "
            "paid is submitted on a guessed price. Try again in a minute (the list is read again then)."
        )
    listed = next((f for f in flavors if f.name == name), None)
    if listed is None or listed.usd_per_hour <= 0:
        priced = [f.name for f in flavors if f.usd_per_hour > 0 and f.is_gpu == (listed.is_gpu if listed else True)]
        return None, (
            f"The Hub lists no price for {name}, so its worst case cannot be bounded: nothing paid is submitted on it. "
            f"Pick a flavor the Hub prices ({', '.join(priced[:6])}{', ...' if len(priced) > 6 else ''})."
        )
    return listed.usd_per_hour, ""


def clear_cache() -> None:
    _CACHE.clear()
