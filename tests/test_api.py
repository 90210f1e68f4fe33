"""The Python API (restor_bench.api): light to import, and the same functions the commands run."""

from __future__ import annotations

import subprocess
import sys

import restor_bench
from restor_bench import api
from test_compare import CLEAN, CORRUPTED, UNLEARNED, TARGETS, TASK, make_run


def test_importing_the_package_loads_neither_torch_nor_lm_eval():
    code = "import sys, restor_bench; print(sorted(m for m in ('torch', 'lm_eval', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_api_names_are_the_functions_the_commands_call():
    from restor_bench.compare.report import compare_restoration
    from restor_bench.evaluation.evaluate import evaluate
    from restor_bench.run.pipeline import RunSpec, run_protocol

    assert api.compare is compare_restoration and api.evaluate is evaluate and api.run_protocol is run_protocol
    assert restor_bench.run_protocol is run_protocol and restor_bench.RunSpec is RunSpec
    assert set(api.__all__) >= {"run_protocol", "evaluate", "compare"}
    assert all(callable(getattr(api, name)) for name in api.__all__)


def test_compare_through_the_api_counts_restored_facts(tmp_path):
    from restor_bench.compare.outcomes import TargetChoice

    report = api.compare(
        clean=str(make_run(tmp_path / "clean", CLEAN)), corrupted=str(make_run(tmp_path / "corrupted", CORRUPTED)),
        unlearned=[str(make_run(tmp_path / "unlearned", UNLEARNED))], labels=["m"],
        targets=TargetChoice(names=tuple(TARGETS)),
    )
    task = report["tasks"][TASK]
    # by hand from test_compare's answers on the 4 target questions: clean knows 3 (Paris, France, Bergen), the
    # corrupted model none, the unlearned model 2 (Paris restored, Norway new); ratio (2/4 - 0) / (3/4 - 0).
    assert [task["accuracy"][m]["target"]["value"] for m in ("clean", "corrupted", "m")] == [0.75, 0.0, 0.5]
    assert abs(task["restoration_ratio"]["m"]["value"] - 2 / 3) < 1e-12
    assert task["transitions"]["m"] | {} == {"target_known": 3, "restored": 1, "still_corrupted": 1, "forgotten": 1,
                                            "non_target_known": 3, "kept": 2, "lost": 1}
