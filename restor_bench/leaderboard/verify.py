"""`restor-bench leaderboard verify`: rerun the protocol a submission records and compare every outcome.

A submission states per-question outcomes; nothing in it ties them to a model. `verify` reruns what it records
(world and data version, corruption, level, forget set, protocol, method and every hyperparameter, LoRA, seeds,
target set, and the run settings in its optional `run` block) with `restor_bench.run.pipeline.run`, builds a submission
from the fresh run the way `submit` does, and compares, for every task, seed, model (clean, corrupted, unlearned)
and question, whether the answer was correct and whether it gave the injected value. The submission is *verified*
when the share of differing outcomes is at most `tolerance` (default 0: every outcome equal).

`--record` writes the result into `verified.json` beside the submissions folder, keyed by submission name and tied
to the submission's result identity (`result_identity`), with the package versions it was verified under; `build`
marks an entry verified only while that identity still matches, so editing a verified file un-verifies it.
Every verification reruns from nothing: in a new folder under `--root`, so no step found there is reused.
What verification proves and does not prove: docs/leaderboard.md.
"""

from __future__ import annotations

import datetime
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from restor_bench.errors import InputError
from restor_bench.leaderboard.check import check_file, read_submission
from restor_bench.leaderboard.metrics import decode_bits
from restor_bench.leaderboard.submit import build_submission
from restor_bench.leaderboard.verified import (  # noqa: F401 (re-exported: the verify command's records)
    VERIFIED_FILE,
    VERIFIED_SCHEMA,
    read_verified,
    result_identity,
    verification_label,
    verified_path,
    write_verified,
)
from restor_bench.run import pipeline
from restor_bench.run.spec import RunSpec, resolve_spec, run_folder
from restor_bench.train.common import package_versions

ROLES = ("clean", "corrupted", "unlearned")


@dataclass
class Verification:
    name: str
    identity: str
    compared: int = 0
    differing: int = 0
    by_task: dict[str, dict[str, int]] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    run_folder: str = ""

    def verified(self, tolerance: float) -> bool:
        return self.compared > 0 and self.differing <= tolerance * self.compared

    def record(self, tolerance: float) -> dict[str, Any]:
        return {
            "identity": self.identity, "verified": self.verified(tolerance), "tolerance": tolerance,
            "outcomes_compared": self.compared, "outcomes_differing": self.differing, "by_task": self.by_task,
            "versions": self.versions,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        }


def spec_from_submission(document: dict[str, Any], *, model: str | None = None, data_dir: str | None = None):
    """The resolved RunSpec (seed 0; `run` takes the seeds) and the seeds a submission records: what it leaves
    out is filled in as for any run (`restor_bench.run.spec.resolve_spec`), so a rerun of the command that made the
    submission, and this rerun, share their steps. A submission without a protocol predates protocols: classic."""
    data, run = document["data"], document.get("run") or {}
    if data["world"] != "tiny" and model is None:
        raise InputError(f"submission {document['name']!r}: world {data['world']!r} needs --model, the clean "
                         f"checkpoint it was run on (the submission names it {document['model']['id']!r})")
    spec = RunSpec(
        world=data["world"], method=document["method"]["name"], level=data["level"], forget=data["forget"],
        corruption=data["corruption"], protocol=data.get("protocol", "classic"), model=model,
        lora=bool(document["model"]["lora"]), hparams=dict(document["method"]["hparams"]),
        targets=data.get("targets", "all"), tasks=tuple(sorted(document["tasks"])), data_dir=data_dir,
        corrupt_max_steps=run.get("corrupt_max_steps"), unlearn_max_steps=run.get("unlearn_max_steps"),
        max_docs_per_entity=run.get("max_docs_per_entity"), retain=run.get("retain"), repair=run.get("repair"),
        corrupt_recipe=dict(run.get("corrupt_recipe") or {}),
    )
    return resolve_spec(spec), list(document["seeds"])


def compare_outcomes(claimed: dict[str, Any], fresh: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Per task: how many outcomes (question x seed x model x {correct, gave_corrupted}) were compared and differ."""
    by_task = {}
    for task, entry in claimed["tasks"].items():
        other = fresh["tasks"].get(task)
        if other is None:
            raise InputError(f"verify: the rerun has no outcomes for task {task!r}")
        if other["questions"] != entry["questions"]:
            raise InputError(f"verify: task {task}: the rerun answered another question set "
                             f"({len(other['questions'])} questions, the submission {len(entry['questions'])})")
        fresh_runs = {run["seed"]: run for run in other["runs"]}
        compared = differing = 0
        for run in entry["runs"]:
            again = fresh_runs.get(run["seed"])
            if again is None:
                raise InputError(f"verify: task {task}: the rerun has no seed {run['seed']}")
            for role in ROLES:
                for kind in ("correct", "gave_corrupted"):
                    a = decode_bits(run[role][kind])[: len(entry["questions"])]
                    b = decode_bits(again[role][kind])[: len(entry["questions"])]
                    compared += len(a)
                    differing += int((a != b).sum())
        by_task[task] = {"compared": compared, "differing": differing}
    return by_task


def verify_submission(path: str | Path, root: str | Path, *, model: str | None = None, data_dir: str | None = None,
                      log: Callable[[str], None] = print) -> Verification:
    """Rerun the protocol a valid submission records and compare every outcome.

    The rerun trusts nothing it did not produce itself: it runs in a new, empty folder under `root`
    (`root/verify-<name>-<random>/`), so no finished step already under `root` (a checkpoint, an evaluation's
    samples file) is reused, whoever wrote it. The folder stays for inspection; delete it when done."""
    checked = check_file(path)
    if not checked.valid:
        raise InputError(" ".join(checked.lines()) or f"{path}: invalid submission")
    document = read_submission(path)
    spec, seeds = spec_from_submission(document, model=model, data_dir=data_dir)
    Path(root).mkdir(parents=True, exist_ok=True)
    fresh_root = Path(tempfile.mkdtemp(prefix=f"verify-{document['name']}-", dir=root))
    log(f"verify {document['name']}: rerunning {spec.world} {spec.method} k={spec.level} {spec.forget} "
        f"{spec.corruption}, protocol {spec.protocol}, seeds {', '.join(map(str, seeds))} in a new folder "
        f"{fresh_root}")
    pipeline.run(spec, seeds, fresh_root, log=log, overwrite=True)
    folder = run_folder(spec, fresh_root)
    fresh = build_submission(folder, document["name"], metric=document["metric"], resamples=0,
                             targets=document["data"].get("targets"))
    result = Verification(name=document["name"], identity=result_identity(document),
                          versions=dict(package_versions()), run_folder=str(folder))
    result.by_task = compare_outcomes(document, fresh)
    result.compared = sum(item["compared"] for item in result.by_task.values())
    result.differing = sum(item["differing"] for item in result.by_task.values())
    return result
