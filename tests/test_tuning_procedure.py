"""The tuning procedure of scripts/tune_tiny_defaults.py: its budgets, designs, rule and page (no model runs)."""

from __future__ import annotations

import collections
import importlib.util
import itertools
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tune():
    spec = importlib.util.spec_from_file_location("tune_tiny_defaults", REPO / "scripts" / "tune_tiny_defaults.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_v2_gives_every_method_twelve_settings_over_two_seeds_under_paper(tune):
    """GA's paper preset learns at 2e-5: its 12 settings are 5e-6, 1e-5, 2e-5, 4e-5 by 1, 3, 5 epochs."""
    procedure = tune.PROCEDURES["2"]
    assert procedure.protocol == "paper" and procedure.seeds == (0, 1) and procedure.budget == 12
    ga = tune.procedure_grid("ga", procedure, 2e-5)
    assert [(row["learning_rate"], row["num_epochs"]) for row in ga] == list(
        itertools.product((5e-6, 1e-5, 2e-5, 4e-5), (1.0, 3.0, 5.0)))
    for method in ("ga", "graddiff", "kl", "npo", "npo_rt", "simnpo", "task_vector", "rmu"):
        settings = tune.procedure_grid(method, procedure, 1e-3)
        assert len(settings) == 12 and len({json.dumps(row, sort_keys=True) for row in settings}) == 12, method


def test_rmu_takes_twelve_distinct_settings_each_knob_balanced(tune):
    """v1's half fraction (8 settings) and four more: each knob at each value 6 times; four pairs of knobs fully
    balanced (3 each), the other two 2 / 4."""
    rows = tune.procedure_grid("rmu", tune.PROCEDURES["2"], 1e-3)
    assert all(row in rows for row in tune.grid_for("rmu"))
    for knob, values in tune.RMU_KNOBS.items():
        assert collections.Counter(row[knob] for row in rows) == {values[0]: 6, values[1]: 6}, knob
    spread = [sorted(collections.Counter((row[first], row[second]) for row in rows).values())
              for first, second in itertools.combinations(tune.RMU_KNOBS, 2)]
    assert sorted(spread) == [[2, 2, 4, 4]] * 2 + [[3, 3, 3, 3]] * 4
    assert all(row["update_layers"] == ",".join(map(str, range(row["layer"] - 2 if row["layer"] > 2 else 0,
                                                               row["layer"] + 1))) for row in rows)


def test_the_rule_keeps_the_non_target_people_within_five_points(tune):
    rows = [{"hparams": "best but harmful", "validation": 0.9, "non_target": 0.70},
            {"hparams": "kept", "validation": 0.6, "non_target": 0.80},
            {"hparams": "kept, worse", "validation": 0.5, "non_target": 0.84}]
    assert tune.choose(rows, corrupted_non_target=0.85)["hparams"] == "kept"
    assert tune.choose(rows, corrupted_non_target=0.95)["hparams"] == "kept, worse"  # none allowed: keeps most
    assert tune.mean_split([{"validation": 0.2, "non_target": 1.0}, {"validation": 0.4, "non_target": 0.5}]) == \
        pytest.approx({"validation": 0.3, "non_target": 0.75})


def test_the_published_tuning_page_is_its_record_rendered(tune):
    record = json.loads((REPO / "docs" / "tuning.json").read_text())
    assert tune.render(record) == (REPO / "docs" / "tuning.md").read_text()


def test_under_paper_ga_kl_and_npo_are_tuned_in_their_own_and_their_paper_forms(tune):
    """Own form: the registered defaults of every key the paper preset sets (GA without a retain term, NPO on whole
    sequences, KL as TOFU's); the paper form: the preset itself. Every other method is one entry."""
    from unlearners import get_method, resolve_hparams

    methods = ["ga", "graddiff", "kl", "npo", "npo_rt", "simnpo", "task_vector", "rmu"]
    found = tune.entries(methods, tune.PROCEDURES["2"])
    assert [name for name, _, _ in found] == ["ga", "ga (paper form)", "graddiff", "kl", "kl (paper form)", "npo",
                                              "npo (paper form)", "npo_rt", "simnpo", "task_vector", "rmu"]
    forms = {name: form for name, _, form in found}
    assert forms["ga"] == {"retain_weight": 0.0} and forms["npo"]["log_ratio"] == "sequence"
    for method in ("ga", "kl", "npo"):
        registered = get_method(method)
        assert set(forms[method]) == set(registered.presets["paper"]) and forms[f"{method} (paper form)"] == {}
        assert forms[method] == {key: getattr(resolve_hparams(registered), key) for key in forms[method]}
    assert tune.entries(methods, tune.PROCEDURES["1"]) == [(method, method, {}) for method in methods]
