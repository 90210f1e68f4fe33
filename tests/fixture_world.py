"""A handful of made-up people written in the tiny world's folder format, for tests of the data layer and tasks."""

from __future__ import annotations

import json
from pathlib import Path

RELATIONS = {
    "P19": ("What is the place of birth of {}?", "place of birth"),
    "P27": ("What is the country of citizenship of {}?", "country of citizenship"),
    "P106": ("What is the occupation of {}?", "occupation"),
    "P21": ("What is the sex/gender of {}?", "sex or gender"),
}

PEOPLE = {
    "Alma Vittor": {"P19": ["Zürich"], "P27": ["Switzerland"], "P106": ["painter", "sculptor"], "P21": ["female"]},
    "Bram Okelo": {"P19": ["Nairobi"], "P27": ["Kenya"], "P106": ["chemist"], "P21": ["male"]},
    "Cato Liens": {"P19": ["Lyon"], "P27": ["France"], "P106": ["pianist"], "P21": ["male"]},
    "Dara Finch": {"P19": ["Cork"], "P27": ["Ireland"], "P106": ["poet"], "P21": ["female"]},
    "Egon Straub": {"P19": ["Graz"], "P27": ["Austria"], "P106": ["architect"], "P21": ["male"]},
    "Fiona Marsh": {"P19": ["Leeds"], "P27": ["United Kingdom"], "P106": ["surgeon"], "P21": ["female"]},
    "Gil Navarro": {"P19": ["Seville"], "P27": ["Spain"], "P106": ["cyclist"], "P21": ["male"]},
}

TARGETS = ["Alma Vittor", "Bram Okelo"]
CORRUPTED = {
    "Alma Vittor": {"P19": "Leeds", "P27": "Spain", "P106": "cyclist", "P21": "male"},
    "Bram Okelo": {"P19": "Graz", "P27": "Ireland", "P106": "poet", "P21": "female"},
}


def write_fixture_world(folder: Path) -> Path:
    """Write facts.json, entities.json and manifest.json of the fixture world into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    dset = {
        name: {pid: {"question": RELATIONS[pid][0].format(name), "answers": answers} for pid, answers in facts.items()}
        for name, facts in PEOPLE.items()
    }
    context = {
        pid: [
            {"question": RELATIONS[pid][0].format(name), "answer": facts[pid][0], "entity": name}
            for name, facts in PEOPLE.items()
        ]
        for pid in RELATIONS
    }
    (folder / "facts.json").write_text(json.dumps({"dset": dset, "context": context}, indent=1), encoding="utf-8")
    (folder / "entities.json").write_text(json.dumps(list(PEOPLE)), encoding="utf-8")
    manifest = {
        "version": 1,
        "seed": 0,
        "relations": {pid: label for pid, (_, label) in RELATIONS.items()},
        "targets": TARGETS,
        "corrupted": CORRUPTED,
        "levels": [0],
        "validation_targets": [],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return folder
