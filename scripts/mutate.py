"""Mutation testing of the modules that decide a result: do their tests notice when the code is subtly wrong?

    python scripts/mutate.py [--modules PATH ...] [--max-mutants N] [--seed S] [--list] [--report FILE]
    python scripts/mutate.py --only restor_bench/compare/stats.py#12      # rerun one mutant (ids as --list shows)

The repository's files (`git ls-files`: the tracked ones and the new ones git does not ignore, as they are in the
working tree) are copied into a temporary folder; each mutant is written there, never in the checkout, and the
module's focused tests (MODULES below) run there with `python -m pytest -x -q`, with PYTHONPATH naming the copy:
before any mutant, a check run inside the copy's test suite makes sure that `restor_bench`, `unlearners`, the
suite's conftest and the task folder all resolve within the copy (not the editable install), and the unmutated
tests must pass.

A mutant is one small change in one of the chosen functions of a module (its AST, spliced back into the source):
a comparison flipped (`<` and `<=`, `>` and `>=`, `==` and `!=`), `and` and `or` swapped, an integer constant
plus or minus one, `+` and `-` swapped (also in `+=`), a `not` dropped, a returned expression replaced by None or
0 (where the function's return annotation allows it: None for an optional or unannotated result, 0 for a number,
False for a bool), or a guard `if ...: raise/return` removed. A mutant that no longer compiles is skipped.
It is killed when the tests fail (or cannot even be collected), survives when they pass, and times out when they
run past the per-mutant limit. A survivor is a test that is missing, or a change that cannot alter behaviour;
tests written for survivors live in tests/test_mutation_survivors.py, one class per module, run first.

--max-mutants N draws N mutants per module with --seed, the operator families taking turns, so that the same
command lists the same mutants while the modules are unchanged. Exit status 0; 2 when a module's unmutated tests
fail (that module is not mutated). Results and the survivors: docs/mutation.md.
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

# module -> the functions mutated (None: every function and method of the module), the pytest arguments of its
# focused tests (files, node ids; missing files are left out; each run is kept under about a minute), and its class
# in SURVIVOR_TESTS: the tests written for mutants that once survived, run first.
MODULES: dict[str, dict] = {
    "restor_bench/compare/stats.py": {
        "survivors": "TestCompareStats",
        "functions": None,
        "tests": ["tests/test_stats_by_hand.py", "tests/test_compare.py"],
    },
    "restor_bench/compare/tasks.py": {
        "survivors": "TestCompareTasks",
        "functions": ["drop_within", "align_task", "gate_task_report"],
        "tests": ["tests/test_compare_gate.py", "tests/test_compare.py"],
    },
    "restor_bench/compare/report.py": {
        "survivors": "TestCompareTasks",
        "functions": ["check_whole_question_sets"],
        "tests": ["tests/test_compare_gate.py", "tests/test_compare.py"],
    },
    "restor_bench/leaderboard/check.py": {
        "survivors": "TestLeaderboardCheck",
        "functions": None,
        "tests": [
            "tests/test_leaderboard_tamper.py",
            "tests/test_leaderboard_integrity.py",
            "tests/test_leaderboard.py::test_bad_submission_is_one_line_exit_2_and_stops_the_build",
            "tests/test_leaderboard.py::test_protocol_is_checked_and_separates_the_tables",
            # the bounded-memory runs take seconds each and guard the reader's size limits, not the checks
            "--deselect", "tests/test_leaderboard_integrity.py::"
                          "test_a_crafted_file_at_the_size_cap_is_refused_within_bounded_memory",
            "--deselect", "tests/test_leaderboard_integrity.py::"
                          "test_the_most_expensive_valid_file_is_checked_within_bounded_memory",
        ],
    },
    "restor_bench/leaderboard/metrics.py": {
        "survivors": "TestLeaderboardMetrics",
        "functions": None,
        "tests": ["tests/test_stats_by_hand.py", "tests/test_leaderboard_fair.py", "tests/test_leaderboard_tamper.py"],
    },
    "restor_bench/leaderboard/verify.py": {
        "survivors": "TestLeaderboardVerify",
        "functions": ["compare_outcomes", "Verification.verified"],
        "tests": [
            # the unit tests of compare_outcomes and verified; the others rerun a whole protocol (minutes)
            "tests/test_leaderboard_verify.py::test_verify_finds_outcomes_that_differ_with_every_count_equal",
            "tests/test_leaderboard_verify.py::test_verify_counts_every_differing_outcome_and_matches_runs_by_seed",
            "tests/test_leaderboard_verify.py::test_verified_allows_exactly_the_tolerated_share",
            "tests/test_leaderboard_verify.py::test_the_tolerance_boundary_on_larger_counts",
            "tests/test_leaderboard_verify.py::test_nothing_compared_is_not_verified",
        ],
    },
    "restor_bench/train/common.py": {
        "survivors": "TestTrainCommon",
        "functions": ["hold_out", "pack_documents"],
        "tests": ["tests/test_hold_out.py"],
    },
    "restor_bench/data/normalize.py": {
        "survivors": "TestNormalize",
        "functions": None,
        "tests": ["tests/test_normalize.py"],
    },
    "unlearners/losses.py": {
        "survivors": "TestLosses",
        "functions": None,
        "tests": ["tests/test_losses.py"],
    },
}
SURVIVOR_TESTS = "tests/test_mutation_survivors.py"

PYTEST = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header"]

FLIPPED_COMPARISONS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
                       ast.NotEq: ast.Eq}
SYMBOLS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.Add: "+",
           ast.Sub: "-", ast.And: "and", ast.Or: "or"}


# ---------------------------------------------------------------------------------------------------------------
# Mutants


@dataclass
class Mutant:
    module: str
    index: int  # its place among all mutants of the module (the id is MODULE#INDEX)
    function: str
    operator: str
    line: int
    start: tuple[int, int]  # (line, byte column) of the replaced source, 1-based line
    end: tuple[int, int]
    original: str
    replacement: str
    outcome: str = ""
    seconds: float = 0.0
    detail: str = ""

    @property
    def ident(self) -> str:
        return f"{self.module}#{self.index}"

    def describe(self) -> str:
        return f"L{self.line} {self.function}: {self.operator}: `{_one_line(self.original)}` -> " \
               f"`{_one_line(self.replacement)}`"


def _one_line(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _annotation_kind(returns: ast.expr | None) -> str | None:
    """The value a `return` of this function may be replaced by (as source), or None when none is type-sensible."""
    if returns is None:
        return "None"
    text = ast.unparse(returns).replace(" ", "")
    parts = set(text.replace("Optional[", "").replace("]", "").split("|"))
    if "None" in parts or text.startswith("Optional["):
        return "None"
    if parts <= {"int", "float"}:
        return "0"
    if parts == {"bool"}:
        return "False"
    return None


class _Sites(ast.NodeVisitor):
    """Every mutation site in the chosen functions of a module, in source order."""

    def __init__(self, functions: list[str] | None):
        self.functions = functions
        self.sites: list[tuple[str, str, ast.AST, str]] = []  # (function, operator, node, replacement source)
        self._stack: list[str] = []
        self._chosen: list[str] = []  # the chosen function being walked (outermost), if any
        self._returns: list[ast.expr | None] = []

    # -- scopes
    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._stack.append(node.name)
        for statement in node.body:
            self.visit(statement)
        self._stack.pop()

    def _visit_function(self, node) -> None:
        self._stack.append(node.name)
        name = ".".join(self._stack)
        entered = not self._chosen and (self.functions is None or name in self.functions)
        if entered:
            self._chosen.append(name)
        if self._chosen:
            self._returns.append(node.returns)
            # defaults count, annotations and decorators do not
            for default in [*node.args.defaults, *[d for d in node.args.kw_defaults if d is not None]]:
                self.visit(default)
            for statement in node.body:
                self.visit(statement)
            self._returns.pop()
        else:
            for statement in node.body:
                if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    self.visit(statement)
        if entered:
            self._chosen.pop()
        self._stack.pop()

    visit_FunctionDef = _visit_function
    visit_AsyncFunctionDef = _visit_function

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        return  # f-string parts: messages, and their positions are not reliable before Python 3.12

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)

    def _add(self, operator: str, node: ast.AST, replacement: str) -> None:
        if self._chosen:
            self.sites.append((".".join(self._stack), operator, node, replacement))

    # -- operators
    def visit_Compare(self, node: ast.Compare) -> None:
        for i, op in enumerate(node.ops):
            flipped = FLIPPED_COMPARISONS.get(type(op))
            if flipped is not None:
                mutated = copy.deepcopy(node)
                mutated.ops[i] = flipped()
                self._add(f"`{SYMBOLS[type(op)]}` -> `{SYMBOLS[flipped]}`", node, f"({ast.unparse(mutated)})")
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        mutated = copy.deepcopy(node)
        mutated.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        self._add(f"`{SYMBOLS[type(node.op)]}` -> `{SYMBOLS[type(mutated.op)]}`", node, f"({ast.unparse(mutated)})")
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if isinstance(node.op, (ast.Add, ast.Sub)):
            mutated = copy.deepcopy(node)
            mutated.op = ast.Sub() if isinstance(node.op, ast.Add) else ast.Add()
            self._add(f"`{SYMBOLS[type(node.op)]}` -> `{SYMBOLS[type(mutated.op)]}`", node,
                      f"({ast.unparse(mutated)})")
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if isinstance(node.op, (ast.Add, ast.Sub)):
            mutated = copy.deepcopy(node)
            mutated.op = ast.Sub() if isinstance(node.op, ast.Add) else ast.Add()
            self._add(f"`{SYMBOLS[type(node.op)]}=` -> `{SYMBOLS[type(mutated.op)]}=`", node, ast.unparse(mutated))
        self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if isinstance(node.op, ast.Not):
            self._add("drop `not`", node, f"({ast.unparse(node.operand)})")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if type(node.value) is int:
            for step in (1, -1):
                self._add(f"constant {node.value} -> {node.value + step}", node, f"({node.value + step})")

    def visit_Return(self, node: ast.Return) -> None:
        if node.value is not None and not (isinstance(node.value, ast.Constant) and node.value.value is None):
            value = _annotation_kind(self._returns[-1]) if self._returns else None
            if value is not None and not (isinstance(node.value, ast.Constant) and repr(node.value.value) == value):
                self._add(f"return {value}", node, f"return {value}")
        self.generic_visit(node)

    def visit_If(self, node: ast.If) -> None:
        if not node.orelse and len(node.body) == 1 and isinstance(node.body[0], (ast.Raise, ast.Return)):
            kind = "raise" if isinstance(node.body[0], ast.Raise) else "return"
            self._add(f"remove the `if ...: {kind}` guard", node, "pass")
        self.generic_visit(node)


def find_mutants(module: str, source: str, functions: list[str] | None) -> list[Mutant]:
    """All mutants of the chosen functions of `module` (source text), in source order, each one that compiles."""
    tree = ast.parse(source)
    finder = _Sites(functions)
    finder.visit(tree)
    if functions is not None:
        found = {name for name, *_ in finder.sites}
        missing = [name for name in functions if not any(f == name or f.startswith(name + ".") for f in found)]
        if missing:
            print(f"warning: {module}: no mutation site in {', '.join(missing)} (renamed?)", file=sys.stderr)
    lines = source.encode("utf-8").splitlines(keepends=True)
    mutants = []
    for function, operator, node, replacement in finder.sites:
        start, end = (node.lineno, node.col_offset), (node.end_lineno, node.end_col_offset)
        original = _segment(lines, start, end)
        mutant = Mutant(module, len(mutants), function, operator, node.lineno, start, end, original, replacement)
        try:
            mutated = apply(source, mutant)
            compile(mutated, module, "exec")
        except SyntaxError:
            continue  # no longer compiles: skipped
        mutants.append(mutant)  # (every operator changes the tree: no mutant is the unchanged module)
    return mutants


def _segment(lines: list[bytes], start: tuple[int, int], end: tuple[int, int]) -> str:
    if start[0] == end[0]:
        return lines[start[0] - 1][start[1]:end[1]].decode("utf-8")
    parts = [lines[start[0] - 1][start[1]:], *lines[start[0]:end[0] - 1], lines[end[0] - 1][:end[1]]]
    return b"".join(parts).decode("utf-8")


def apply(source: str, mutant: Mutant) -> str:
    """The module's source with the mutant's replacement spliced in (columns are UTF-8 byte offsets)."""
    lines = source.encode("utf-8").splitlines(keepends=True)
    (first, col), (last, end_col) = mutant.start, mutant.end
    head = b"".join(lines[: first - 1]) + lines[first - 1][:col]
    tail = lines[last - 1][end_col:] + b"".join(lines[last:])
    return (head + mutant.replacement.encode("utf-8") + tail).decode("utf-8")


def operator_family(mutant: Mutant) -> str:
    operator = mutant.operator
    for prefix, family in (("constant", "constant"), ("return", "return"), ("remove", "guard"), ("drop", "not"),
                           ("`and`", "boolean"), ("`or`", "boolean"), ("`+", "arithmetic"), ("`-", "arithmetic")):
        if operator.startswith(prefix):
            return family
    return "comparison"


def chosen_mutants(everything: list[Mutant], max_mutants: int | None, seed: int) -> list[Mutant]:
    """At most `max_mutants` of a module's mutants, drawn with `seed`: the operator families take turns (in an
    order drawn too), so that the many integer constants do not crowd out the comparisons and guards."""
    if max_mutants is None or max_mutants >= len(everything):
        return everything
    module = everything[0].module
    generator = random.Random(f"{seed}:{module}")
    families: dict[str, list[Mutant]] = {}
    for mutant in everything:
        families.setdefault(operator_family(mutant), []).append(mutant)
    queues = [generator.sample(members, len(members)) for _, members in sorted(families.items())]
    generator.shuffle(queues)
    picked: list[Mutant] = []
    while len(picked) < max_mutants:
        for queue in queues:
            if queue and len(picked) < max_mutants:
                picked.append(queue.pop())
    return sorted(picked, key=lambda m: m.index)


# ---------------------------------------------------------------------------------------------------------------
# The copy and the test runs


def tracked_files(root: Path) -> list[str]:
    """The repository's files as git lists them: tracked, and new ones that are not ignored (deleted ones left out)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                            check=True, capture_output=True).stdout.decode("utf-8").split("\0")
    return sorted({name for name in listed if name and (root / name).is_file()})


def copy_repository(root: Path, into: Path) -> tuple[Path, int]:
    """The copy's root folder (`into/<the repository's folder name>`) and how many files were copied."""
    copied, names = into / root.name, tracked_files(root)
    for name in names:
        target = copied / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target, follow_symlinks=False)
    return copied, len(names)


def copy_environment(copied: Path) -> dict[str, str]:
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join([str(copied), *filter(None, [os.environ.get("PYTHONPATH")])])
    # no bytecode cache: a mutant of the same size written within the same second must not reuse a stale .pyc
    environment["PYTHONDONTWRITEBYTECODE"] = "1"
    for name, value in (("HF_HUB_OFFLINE", "1"), ("HF_DATASETS_OFFLINE", "1"), ("TOKENIZERS_PARALLELISM", "false")):
        environment.setdefault(name, value)
    return environment


WHERE_TEST = '''
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_copy_is_what_runs(repo_root):
    import conftest
    import restor_bench
    import unlearners
    from restor_bench.evaluation.tasks import tasks_dir

    found = {"restor_bench": restor_bench.__file__, "unlearners": unlearners.__file__,
             "conftest": conftest.__file__, "repo_root fixture": repo_root, "tasks_dir": tasks_dir()}
    for what, path in found.items():
        print(f"{what} -> {path}")
        assert Path(path).resolve().is_relative_to(ROOT), (what, path)
'''


def check_the_copy_runs(copied: Path, environment: dict[str, str]) -> None:
    """Run a test inside the copy's suite that fails unless the code, conftest and tasks resolve in the copy."""
    probe = copied / "tests" / "test_zz_mutate_where.py"
    probe.write_text(WHERE_TEST)
    try:
        done = subprocess.run([*PYTEST, "-s", str(probe.relative_to(copied))], cwd=copied, env=environment,
                              capture_output=True, text=True, timeout=300)
    finally:
        probe.unlink()
    shown = [line for line in done.stdout.splitlines() if " -> " in line]
    if done.returncode != 0:
        sys.exit(f"the copy's test run imports code from outside the copy:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    print("inside the copy's test run: " + "; ".join(line.replace(str(copied), "<copy>") for line in shown))


def focused_arguments(module: str, copied: Path) -> list[str]:
    """The module's pytest arguments (its survivor tests first), without the files that are not in the copy."""
    arguments, given = [], list(MODULES[module]["tests"])
    survivors = copied / SURVIVOR_TESTS
    if survivors.is_file() and f"\nclass {MODULES[module]['survivors']}:" in survivors.read_text(encoding="utf-8"):
        arguments.append(f"{SURVIVOR_TESTS}::{MODULES[module]['survivors']}")
    i = 0
    while i < len(given):
        if given[i] == "--deselect":
            arguments += given[i:i + 2]
            i += 2
            continue
        if (copied / given[i].split("::")[0]).is_file():
            arguments.append(given[i])
        else:
            print(f"  note: {given[i]} is not in the repository; left out", file=sys.stderr)
        i += 1
    return arguments


def run_tests(copied: Path, arguments: list[str], environment: dict[str, str],
              timeout: float) -> tuple[str, float, str]:
    """(outcome, seconds, last output line): passed, failed, timeout or error (pytest could not run the tests)."""
    started = time.perf_counter()
    process = subprocess.Popen([*PYTEST, *arguments], cwd=copied, env=environment, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the tests' own subprocesses too
        process.communicate()
        return "timeout", time.perf_counter() - started, ""
    seconds = time.perf_counter() - started
    lines = [line for line in output.splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    # 0 all passed; 1 some failed; 2 interrupted (e.g. a collection error: the mutant broke an import)
    outcome = {0: "passed", 1: "failed", 2: "failed"}.get(process.returncode, "error")
    return outcome, seconds, last if outcome != "error" else "\n".join(lines[-15:])


# ---------------------------------------------------------------------------------------------------------------
# The command


def _module_key(text: str) -> str:
    text = text.replace("\\", "/").removeprefix("./")
    matches = [key for key in MODULES if key == text or key.endswith("/" + text)]
    if len(matches) != 1:
        sys.exit(f"--modules: {text!r} is not one of (or is ambiguous among): {', '.join(MODULES)}")
    return matches[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modules", nargs="+", metavar="PATH", help="modules to mutate (default: all of MODULES)")
    parser.add_argument("--max-mutants", type=int, metavar="N", help="at most N mutants per module, drawn by --seed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--list", action="store_true", help="list the mutants without running anything")
    parser.add_argument("--only", nargs="+", metavar="MODULE#INDEX", help="run just these mutants (ids from --list)")
    parser.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="per-mutant limit (default: 3 x the unmutated run, at least 60 s)")
    parser.add_argument("--report", metavar="PATH", help="write the results as Markdown")
    args = parser.parse_args(argv)
    if args.max_mutants is not None and args.max_mutants < 1:
        parser.error("--max-mutants must be at least 1")

    only: dict[str, set[int]] = {}
    for ident in args.only or []:
        module, _, index = ident.rpartition("#")
        if not module or not index.isdigit():
            parser.error(f"--only: {ident!r} is not MODULE#INDEX")
        only.setdefault(_module_key(module), set()).add(int(index))
    modules = [_module_key(m) for m in args.modules] if args.modules else list(only or MODULES)

    plan: dict[str, list[Mutant]] = {}
    totals: dict[str, int] = {}
    sources: dict[str, str] = {}
    for module in modules:
        source = sources[module] = (REPO_ROOT / module).read_text(encoding="utf-8")
        everything = find_mutants(module, source, MODULES[module]["functions"])
        totals[module] = len(everything)
        if module in only:
            unknown = sorted(only[module] - {m.index for m in everything})
            if unknown:
                sys.exit(f"--only: {module} has {len(everything)} mutants (0-{len(everything) - 1}); no {unknown}")
            plan[module] = [m for m in everything if m.index in only[module]]
        else:
            plan[module] = chosen_mutants(everything, args.max_mutants, args.seed)

    if args.list:
        for module, mutants in plan.items():
            print(f"{module}: {len(mutants)} of {totals[module]} mutants")
            for mutant in mutants:
                print(f"  {mutant.ident}  {mutant.describe()}")
        return 0

    started = time.perf_counter()
    summary: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="restor-mutate-") as temporary:
        copied, count = copy_repository(REPO_ROOT, Path(temporary))
        environment = copy_environment(copied)
        print(f"copied {count} files into a temporary folder; mutants are written there only")
        check_the_copy_runs(copied, environment)
        for module, mutants in plan.items():
            arguments = focused_arguments(module, copied)
            target = copied / module
            original = target.read_text(encoding="utf-8")
            if original != sources[module]:
                sys.exit(f"{module} changed while it was being copied; run again")
            print(f"\n{module}: {len(mutants)} mutants; tests: {' '.join(arguments)}", flush=True)
            outcome, baseline, last = run_tests(copied, arguments, environment, timeout=600)
            if outcome != "passed":
                print(f"  the unmutated tests do not pass ({outcome}): {last}; module skipped", flush=True)
                summary[module] = {"mutants": mutants, "baseline": None, "problem": f"unmutated tests: {outcome}"}
                continue
            limit = args.timeout or max(60.0, 3 * baseline)
            print(f"  unmutated: passed in {baseline:.1f} s ({last}); per-mutant limit {limit:.0f} s", flush=True)
            try:
                for number, mutant in enumerate(mutants, 1):
                    target.write_text(apply(original, mutant), encoding="utf-8")
                    outcome, mutant.seconds, mutant.detail = run_tests(copied, arguments, environment, limit)
                    mutant.outcome = {"passed": "survived", "failed": "killed", "timeout": "timed out"}.get(
                        outcome, "error")
                    print(f"  [{number}/{len(mutants)}] {mutant.ident} {mutant.describe()}: {mutant.outcome.upper()} "
                          f"({mutant.seconds:.1f} s)", flush=True)
                    if mutant.outcome == "error":
                        print(textwrap.indent(mutant.detail, "    "), flush=True)
            finally:
                target.write_text(original, encoding="utf-8")
            summary[module] = {"mutants": mutants, "baseline": baseline, "limit": limit}
    elapsed = time.perf_counter() - started

    table = _table(summary)
    print("\n" + table)
    survivors = [m for entry in summary.values() for m in entry["mutants"] if m.outcome == "survived"]
    if survivors:
        print("\nsurvivors:")
        for mutant in survivors:
            print(f"  {mutant.ident}  {mutant.describe()}")
    print(f"\n{elapsed / 60:.1f} minutes")
    if args.report:
        Path(args.report).write_text(_markdown(summary, table, survivors, args, elapsed), encoding="utf-8")
        print(f"report: {args.report}")
    return 2 if any(entry.get("problem") for entry in summary.values()) else 0


def _table(summary: dict[str, dict]) -> str:
    rows = ["| module | mutants tried | killed | survived | timed out | errors |", "|---|---|---|---|---|---|"]
    totals = [0] * 5
    for module, entry in summary.items():
        mutants = entry["mutants"]
        if entry.get("problem"):
            rows.append(f"| `{module}` | not run: {entry['problem']} | | | | |")
            continue
        counts = [len(mutants), *(sum(m.outcome == kind for m in mutants)
                                  for kind in ("killed", "survived", "timed out", "error"))]
        totals = [a + b for a, b in zip(totals, counts)]
        rows.append(f"| `{module}` | " + " | ".join(map(str, counts)) + " |")
    rows.append("| all | " + " | ".join(map(str, totals)) + " |")
    return "\n".join(rows)


def _markdown(summary, table, survivors, args, elapsed: float) -> str:
    command = "python scripts/mutate.py " + " ".join(sys.argv[1:])
    lines = ["# Mutation run", "", f"`{command.strip()}`", "", table, ""]
    for module, entry in summary.items():
        lines.append(f"## `{module}`")
        lines.append("")
        if entry.get("baseline") is not None:
            lines.append(f"Unmutated tests: {entry['baseline']:.1f} s; per-mutant limit {entry['limit']:.0f} s.")
            lines.append("")
        for mutant in entry["mutants"]:
            lines.append(f"- `{mutant.ident}` {mutant.describe().replace('`', '')}: **{mutant.outcome or 'not run'}**"
                         f" ({mutant.seconds:.1f} s)")
        lines.append("")
    lines.append(f"Survivors: {len(survivors)}. Runtime {elapsed / 60:.1f} minutes.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
