"""The CPU a figure or a cached choice belongs to: its model name and the instruction sets that
decide which kernels a runtime picks.

The name alone does not tell: "AMD EPYC" is what both a Zen 3 with AVX2 only and a Zen 4 with
AVX-512 VNNI report, and the INT8 network runs two to three times as fast on the second. Figures named only
"AMD EPYC" could not be told apart from the machine's own drift, so every benchmark names the
instruction sets too, and the measured ``precision: auto`` is cached per signature.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: Flags that change which kernels a runtime picks (in /proc/cpuinfo's spelling).
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")


@dataclass(frozen=True)
class Cpu:
    name: str
    flags: tuple[str, ...]  # those of FLAGS it has
    cores: int  # the cores this process may run on

    @classmethod
    def parse(cls, cpuinfo: str, cores: int) -> Cpu:
        """From /proc/cpuinfo's text (its first processor's model name; its flags)."""
        name = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "unknown")
        words = set(cpuinfo.split())
        return cls(name, tuple(f for f in FLAGS if f in words), cores)

    @property
    def vnni(self) -> bool:
        """INT8 dot products in one instruction. Without, OpenVINO's and ONNX Runtime's u8 x s8
        products saturate in int16, and INT8 strays further from fp32."""
        return any(f in self.flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))

    def isa(self) -> str:
        """The instruction sets in words, e.g. "AVX-512 VNNI bf16, no AMX" or "AVX2, no AVX-512"."""
        if "amx_tile" in self.flags:
            return "AVX-512" + (" VNNI" if "avx512_vnni" in self.flags else "") + ", AMX"
        if "avx512f" in self.flags:
            extras = [w for f, w in (("avx512_vnni", "VNNI"), ("avx512_bf16", "bf16")) if f in self.flags]
            return " ".join(["AVX-512", *extras]) + ", no AMX"
        if "avx2" in self.flags:
            return "AVX2" + (" VNNI" if "avx_vnni" in self.flags else "") + ", no AVX-512"
        return "no AVX2"

    def describe(self) -> str:
        """What a benchmark prints: "AMD EPYC (AVX2, no AVX-512; 2 cores)"."""
        return f"{self.name} ({self.isa()}; {self.cores} cores)"

    def signature(self) -> str:
        """The cache key's part: name, flags, cores (the spelling auto_precision.json has always had)."""
        return f"{self.name} | {' '.join(self.flags) or 'no-simd-flags'} | {self.cores} cores"


def this_cpu() -> Cpu:
    """This machine's CPU (Linux: /proc/cpuinfo; elsewhere the name only, no flags)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        return Cpu.parse(Path("/proc/cpuinfo").read_text(), cores)
    except OSError:
        import platform

        return Cpu(platform.processor() or "unknown", (), cores)
