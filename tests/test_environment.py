"""The machine record of result files: the CPU model and whether it has bf16 instructions."""

from __future__ import annotations

from bsarec import environment

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse avx2 avx512f {extra}

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
"""


def test_cpu_model_and_bf16_instructions_come_from_cpuinfo(tmp_path, monkeypatch):
    path = tmp_path / "cpuinfo"
    monkeypatch.setattr(environment, "CPUINFO", path)
    path.write_text(CPUINFO.format(extra="avx512_bf16 amx_tile"))
    assert environment.cpu() == {"model": "Intel(R) Xeon(R) Platinum 8480+", "bf16": True}
    assert "(Intel(R) Xeon(R) Platinum 8480+, with bf16 instructions)" in environment.machine_line()
    path.write_text(CPUINFO.format(extra="avx512vl"))
    assert environment.cpu()["bf16"] is False
    assert "without bf16 instructions" in environment.machine_line()


def test_cpu_without_cpuinfo_names_the_platform(tmp_path, monkeypatch):
    monkeypatch.setattr(environment, "CPUINFO", tmp_path / "absent")
    record = environment.cpu()
    assert record["bf16"] is False and record["model"]
