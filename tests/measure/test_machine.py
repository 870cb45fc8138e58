"""cpu_description: model name and SIMD features read from /proc/cpuinfo-format files."""

from __future__ import annotations

from pathlib import Path

from leandl.measure import cpu_description, cpu_features

_ZEN4 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512bw avx512_vnni avx512_bf16
processor\t: 1
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512bw avx512_vnni avx512_bf16
"""
_ZEN2 = "processor\t: 0\nmodel name\t: AMD EPYC 7R32\nflags\t\t: fpu sse sse2 avx avx2 fma\n"
_ARM = "processor\t: 0\nFeatures\t: fp asimd asimddp sve\n"


def _file(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cpuinfo"
    p.write_text(text)
    return p


def test_vnni_cpu_lists_its_int8_and_bf16_features(tmp_path: Path) -> None:
    p = _file(tmp_path, _ZEN4)
    assert cpu_features(p) == ["AVX2", "AVX-512", "AVX-512 VNNI", "AVX-512 BF16"]
    assert cpu_description(p) == "AMD EPYC 9R14 (AVX2, AVX-512, AVX-512 VNNI, AVX-512 BF16)"


def test_avx2_only_cpu_says_no_vnni(tmp_path: Path) -> None:
    assert cpu_description(_file(tmp_path, _ZEN2)) == "AMD EPYC 7R32 (AVX2, no VNNI)"


def test_arm_features_and_missing_file(tmp_path: Path) -> None:
    assert cpu_features(_file(tmp_path, _ARM)) == ["NEON dot product", "SVE"]
    assert cpu_features(tmp_path / "absent") == []
    assert cpu_description(tmp_path / "absent")  # falls back to platform facts, never empty
