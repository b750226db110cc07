"""The CPU a figure is named by: the instruction sets, not the model name alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from fcn_perception.cpu import Cpu, this_cpu

_BASE = "fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma"
_KINDS = {  # /proc/cpuinfo's flags of the three kinds of machine this workplace has had
    "zen3": (f"{_BASE} avx2 bmi2 sha_ni vaes", "AMD EPYC (AVX2, no AVX-512; 2 cores)", False),
    "zen4": (f"{_BASE} avx2 avx512f avx512dq avx512_bf16 avx512vl avx512_vnni avx512_vbmi2", "AMD EPYC (AVX-512 VNNI bf16, no AMX; 2 cores)", True),
    "xeon": (f"{_BASE} avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8", "Intel(R) Xeon(R) Platinum 8488C (AVX-512 VNNI, AMX; 2 cores)", True),
}


@pytest.mark.parametrize("kind", list(_KINDS))
def test_two_cpus_of_one_name_are_told_apart_by_their_instruction_sets(kind):
    flags, described, vnni = _KINDS[kind]
    name = "Intel(R) Xeon(R) Platinum 8488C" if kind == "xeon" else "AMD EPYC"
    cpu = Cpu.parse(f"processor\t: 0\nmodel name\t: {name}\nflags\t\t: {flags}\n\nprocessor\t: 1\nmodel name\t: {name}\n", 2)
    assert cpu.describe() == described
    assert cpu.vnni is vnni
    assert cpu.signature().startswith(f"{name} | avx2") and cpu.signature().endswith("| 2 cores")


def test_this_machine_is_described_by_what_proc_cpuinfo_says():
    cpu = this_cpu()
    assert cpu.name != "unknown" and cpu.cores >= 1
    assert cpu.isa().startswith("AVX-512") == ("avx512f" in Path("/proc/cpuinfo").read_text().split())
