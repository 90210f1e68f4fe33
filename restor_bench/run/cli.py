"""`restor-bench run`: its options and the command (the protocol itself is `restor_bench.run.pipeline`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from restor_bench.errors import InputError
from restor_bench.evaluation.evaluate import add_eval_options, parse_batch_size, prefer_passive_threads
from restor_bench.names import PROTOCOLS, WORLD_LEVELS, WORLDS
from restor_bench.run.pipeline import check_run_inputs, refuse_unused_retain, run
from restor_bench.run.report import format_summary
from restor_bench.run.spec import RunSpec, resolve_spec, run_folder
from restor_bench.train.corrupt import recipe_settings
from unlearners.cli import seed_number


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="the whole RESTOR protocol: corrupt, unlearn, evaluate, compare",
        description="Corrupt the clean model, unlearn, evaluate clean / corrupted / unlearned with lm-eval, compare. "
        "Finished steps of earlier runs with the same inputs are reused.",
    )
    parser.add_argument("--method", default="npo", help="unlearning method (see `restor-bench methods`; default npo)")
    parser.add_argument("--level", type=int, default=0, help="corruption level k (unrelated context; default 0)")
    parser.add_argument("--world", choices=WORLDS, default="tiny", help="tiny (embedded, offline) or official")
    parser.add_argument("--seeds", type=int, default=1, help="number of seeds (0..N-1; default 1)")
    parser.add_argument("--seed", type=seed_number, default=0, help="first seed (default 0)")
    parser.add_argument("--forget", choices=("full", "simplified"), default="full",
                        help="forget set: the corruption documents, or only their wrong-fact sentences")
    parser.add_argument("--corruption", choices=("wikidata", "squad"), default="wikidata",
                        help="corruption documents: wikidata-style (mix_a{k}) or SQuAD-style passages")
    parser.add_argument("--model", help="clean checkpoint (default: the tiny world's shipped model)")
    parser.add_argument("--lora", action="store_true", help="LoRA for corruption and unlearning (merged after)")
    parser.add_argument("--config", help="YAML file of the method's hyperparameters")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one hyperparameter of the method (repeatable)")
    parser.add_argument("--corrupt-max-steps", type=int, help="cap the corruption's optimizer steps")
    parser.add_argument("--corrupt-set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting of the corruption recipe, e.g. learning_rate=3e-4 (repeatable)")
    parser.add_argument("--max-steps", type=int, help="cap the unlearning's optimizer steps")
    parser.add_argument("--max-docs-per-entity", type=int, help="official world: keep N documents per target entity")
    parser.add_argument("--tasks", help="comma-separated lm-eval tasks (default: restor_tiny_facts or "
                        "restor_facts_targets)")
    parser.add_argument("--limit", type=int, help="evaluate only the first N questions of each task (smoke runs)")
    parser.add_argument("--batch-size", default="32", help="lm-eval batch size (default 32)")
    parser.add_argument("--data-dir", help="folder of the official RESTOR files (else RESTOR_DATA_DIR or download)")
    parser.add_argument("--targets", choices=("all", "test"), default="all",
                        help="target facts to report on: all, or (tiny world) the test targets, leaving out the "
                        "validation targets the defaults were tuned on")
    add_protocol_arguments(parser)

    add_eval_options(parser)
    parser.add_argument("--root", default="runs", help="folder of runs and their step artifacts (default ./runs)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run folder when it holds a different run (other seeds); a rerun of the "
                        "same command replaces its own record without it")
    parser.add_argument("--print-folder", action="store_true",
                        help="check the arguments, print the run folder these settings use (it may not exist yet) "
                        "and exit without running anything")
    parser.set_defaults(func=run_command)


def add_protocol_arguments(parser) -> None:
    """--protocol, --retain and --repair: shared by `run` and `grid`."""
    parser.add_argument(
        "--protocol", choices=PROTOCOLS,
        help="paper: RESTOR as published (packed corruption with 10%% held out, the paper's GA/KL/NPO losses, "
        "a generic-text retain set); classic: one document per example, the methods' own losses, retain = facts "
        "about the non-target people. Default: paper on the official world, classic on the tiny world",
    )
    parser.add_argument("--retain", metavar="DOCS",
                        help="retain documents: a file, a named set or hf:DATASET (default: the protocol's; "
                        "paper: WORLD:generic, classic: WORLD:retain)")
    parser.add_argument("--repair", metavar="DOCS",
                        help="fine-tune each unlearned model briefly on these documents before evaluating it, as "
                        "the paper does with LIMA (text, chat or LIMA-format records; see `restor-bench repair`)")


def spec_from_args(args: argparse.Namespace) -> RunSpec:
    """The resolved RunSpec of `restor-bench run` options (seed: the first one): the options as given, every
    default fixed by `resolve_spec`, as for a RunSpec built in Python; --config and --set apply over the protocol's
    preset of the method's hyperparameters."""

    batch_size = parse_batch_size(str(args.batch_size))
    tasks = tuple(t.strip() for t in (args.tasks or "").split(",") if t.strip())
    spec = RunSpec(
        world=args.world, method=args.method, level=args.level, forget=args.forget, corruption=args.corruption,
        model=args.model, lora=args.lora, seed=args.seed, protocol=args.protocol, retain=args.retain,
        repair=args.repair, corrupt_max_steps=args.corrupt_max_steps, unlearn_max_steps=args.max_steps,
        corrupt_recipe=recipe_settings(args.corrupt_set),
        max_docs_per_entity=args.max_docs_per_entity, limit=args.limit, batch_size=batch_size,
        data_dir=args.data_dir, tasks=tasks, targets=args.targets, device=args.device, backend=args.backend,
    )
    resolved = resolve_spec(spec, config=args.config, sets=args.set)
    if args.tasks is not None and not tasks:
        raise InputError("--tasks is empty")
    return resolved


def run_command(args) -> int:
    prefer_passive_threads()
    if args.seeds < 1:
        raise InputError(f"--seeds must be at least 1, got {args.seeds}")
    levels = WORLD_LEVELS[args.world]
    if args.level not in levels:
        raise InputError(f"--level must be one of the {args.world} world's levels {levels[0]}..{levels[-1]}, "
                         f"got {args.level}")
    spec = spec_from_args(args)
    refuse_unused_retain(args.retain, [spec])
    seeds = list(range(args.seed, args.seed + args.seeds))
    if args.print_folder:  # the spec's seed is the first one
        check_run_inputs(spec)
        print(run_folder(spec, Path(args.root)))
        return 0
    record = run(spec, seeds, Path(args.root), overwrite=args.overwrite)
    print()
    print(format_summary(record))
    run_dir = Path(args.root) / record["name"]
    print(f"\nrun record:  {run_dir / 'run.json'}")
    print(f"report:      {run_dir / 'report.md'}")
    for entry in record["per_seed"]:
        for key, path in entry["artifacts"].items():
            print(f"seed {entry['seed']} {key:<15} {Path(args.root) / path}")
    return 0
