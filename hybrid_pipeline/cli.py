"""`hybrid-arc`: the command line. Thin: each subcommand parses its flags and calls library functions.

Exit codes: 0 success, 2 bad input or usage (one line per problem on stderr, no traceback),
1 internal fault, 141 (128 + SIGPIPE, what a shell reports for a command a broken pipe ended) when
the reader of stdout stops early, as `hybrid-arc ... | head` does. Heavy imports (torch,
transformers, datasets) happen inside the subcommand that needs them, so `hybrid-arc --help` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

from hybrid_pipeline.arc.wording import plural

EXIT_OK, EXIT_FAULT, EXIT_USAGE = 0, 1, 2
EXIT_BROKEN_PIPE = 128 + 13  # SIGPIPE is 13 on every POSIX system

DATA_HELP = ("arc-agi-1:training | arc-agi-1:evaluation | arc-agi-2:training | arc-agi-2:evaluation | "
             "a directory of task JSON files | a task JSON file | a Kaggle challenges file")


class UsageError(Exception):
    """Bad command-line input found after parsing; printed as one line, exit 2."""


def error(line: str) -> None:
    """A problem on stderr, in the one style of every command: `error: ...` (and `warning: ...` for a
    run that goes on but should not be trusted as it stands: `runs.warn`)."""
    print(f"error: {line}", file=sys.stderr)


def say_threads() -> None:
    """The thread line of a run's header (what `_main` chose for the command's `--threads`)."""
    from hybrid_pipeline.threads import chosen

    choice = chosen()
    if choice is not None and _reports():
        print(choice.describe())


def _reports() -> bool:
    """Whether this process speaks for the command: under `torchrun` / `accelerate launch` every
    process meets the same warning, error or signal, and one (rank 0) reports it."""
    return os.environ.get("RANK", "0") == "0"


# Errors that mean "the user's input is wrong": module -> class names. Checked through sys.modules
# so that catching them never imports a heavy module the command did not use.
USER_ERRORS = {
    "hybrid_pipeline.arc.errors": ("ARCDataError",),
    "hybrid_pipeline.config": ("ConfigError",),
    "hybrid_pipeline.trm.checkpoint": ("CheckpointError",),
    "hybrid_pipeline.backbones.config": ("BackboneLoadError",),
    "hybrid_pipeline.baseline": ("BaselineError",),
    "hybrid_pipeline.runs": ("RunError",),
}


def _user_error_lines(exc: BaseException) -> list[str] | None:
    if isinstance(exc, UsageError):
        return [str(exc)]
    for module_name, class_names in USER_ERRORS.items():
        module = sys.modules.get(module_name)
        if module is not None and isinstance(exc, tuple(getattr(module, n) for n in class_names)):
            problems = getattr(exc, "problems", None)
            return [str(p) for p in problems] if problems else [str(exc)]
    return None


# --------------------------------------------------------------------------------------------------
# data


def _task_patterns(text: str | None) -> list[str] | None:
    """`--tasks a, b,` -> ["a", "b"]; None when the flag is absent."""
    return [p.strip() for p in text.split(",") if p.strip()] if text else None


def _load(args: argparse.Namespace, *, require_solutions: bool = False):
    from hybrid_pipeline.arc.tasks import load_tasks

    return load_tasks(args.data, ids=_task_patterns(getattr(args, "tasks", None)), limit=getattr(args, "limit", None),
                      require_solutions=require_solutions).raise_if_problems().tasks


def cmd_data_stats(args: argparse.Namespace) -> int:
    from hybrid_pipeline.arc.stats import dataset_stats

    print(dataset_stats(_load(args)).table(f"dataset {args.data}"), end="")
    return EXIT_OK


def cmd_data_show(args: argparse.Namespace) -> int:
    from hybrid_pipeline.arc.render import render_task, use_colour
    from hybrid_pipeline.arc.tasks import load_tasks

    result = load_tasks(args.data, ids=[args.task_id])
    task = next((t for t in result.tasks if t.id == args.task_id), None)
    if task is None:
        result.raise_if_problems()
        raise UsageError(f"{args.data}: task {args.task_id} not found")
    print(render_task(task, colour=use_colour(sys.stdout), show_solutions=not args.hide_solutions), end="")
    return EXIT_OK


def cmd_data_check(args: argparse.Namespace) -> int:
    from hybrid_pipeline.arc.errors import ARCDataError
    from hybrid_pipeline.arc.tasks import load_tasks, merge_tasks

    sources, n_problems = [], 0
    for path in args.paths:
        result = load_tasks(path, require_solutions=args.require_solutions)
        sources.append((path, result.tasks))
        n_problems += len(result.problems)
        for problem in result.problems:
            error(str(problem))
    try:  # the paths together are one set of tasks: an id must name one task across all of them
        n_tasks = len(merge_tasks(sources))
    except ARCDataError as e:
        n_tasks = len({t.id for _, tasks in sources for t in tasks})
        n_problems += len(e.problems)
        for problem in e.problems:
            error(str(problem))
    counts = f"{plural(n_tasks, 'valid task')}, {plural(n_problems, 'problem')}"
    if n_problems:
        error(f"{counts} (listed above)")
        return EXIT_USAGE
    print(counts)
    return EXIT_OK


# --------------------------------------------------------------------------------------------------
# score


def cmd_score(args: argparse.Namespace) -> int:
    import json

    from hybrid_pipeline.arc.scoring import read_submission, score_submission
    from hybrid_pipeline.arc.tasks import load_tasks, select_from

    loaded = load_tasks(args.data, require_solutions=True).raise_if_problems()
    dataset_ids = [t.id for t in loaded.tasks]  # a submission id outside these is the wrong dataset
    tasks = select_from(loaded, args.data, ids=_task_patterns(args.tasks), limit=args.limit).raise_if_problems().tasks
    submission = read_submission(args.submission, tasks, dataset_ids=dataset_ids, require_all=args.strict)
    held = [t for t in tasks if t.id in submission]
    if not held:
        raise UsageError(f"{args.submission}: holds none of the tasks of {args.data} being scored "
                         f"({plural(len(tasks), 'task')})")
    report = score_submission(submission, held)
    print(f"{args.data}: {plural(report.n_tasks, 'task')}, {plural(report.n_outputs, 'test output')}, "
          "2 attempts each")
    print(f"  per-task score    {100 * report.task_score:6.2f}%  (mean over tasks of the fraction "
          f"of test inputs solved)")
    print(f"  per-output score  {100 * report.output_score:6.2f}%  ({report.n_solved_outputs} of "
          f"{report.n_outputs} test outputs solved)")
    result = report.to_dict()
    if len(held) < len(tasks):  # scored above on the tasks it holds; here on all, the others unsolved
        everything = score_submission(submission, tasks)
        print(f"  missing tasks     {len(tasks) - len(held)} of {len(tasks)} not in the submission; counted as "
              f"unsolved: per-task {100 * everything.task_score:.2f}%, per-output {100 * everything.output_score:.2f}%")
        result["missing_tasks"] = [t.id for t in tasks if t.id not in submission]
        result["with_missing_unsolved"] = {k: v for k, v in everything.to_dict().items() if k != "per_task"}
    if args.json:
        print(json.dumps(result))
    return EXIT_OK


# --------------------------------------------------------------------------------------------------
# trm


def _train(args: argparse.Namespace, config_class: type, train: Callable, exported: str,
           scores: Callable[[dict], str]) -> int:
    """Load the config (`--config`, then KEY=VALUE overrides), train with --resume/--overwrite, and
    on the main process say where the export went and, when there was one, the held-out `scores`."""
    from hybrid_pipeline.config import load_config

    config = load_config(config_class, args.config, args.overrides)
    say_threads()
    result = train(config, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet)
    if result.is_main_process:
        print(f"trained {plural(result.steps, 'step')}; {exported} exported to {result.final_dir}")
        if result.eval is not None:
            print(scores(result.eval))
    return EXIT_OK


def cmd_trm_train(args: argparse.Namespace) -> int:
    from hybrid_pipeline.trm.train import TRMTrainConfig, train_trm

    return _train(args, TRMTrainConfig, train_trm, "model", lambda e: (
        f"held-out tasks: pass@1 {100 * e['pass_at']['1']:.2f}%, pass@2 {100 * e['pass_at']['2']:.2f}% (per task)"))


def cmd_joint_train(args: argparse.Namespace) -> int:
    from hybrid_pipeline.joint import JointTrainConfig, train_joint

    def scores(result: dict) -> str:
        trm, lm = result["trm"], result["lm"]
        return (f"held-out tasks ({trm['tasks']}, {plural(trm['test_outputs'], 'test output')}), 2 attempts: "
                f"TRM grid {100 * trm['task_score']:.2f}% per task ({100 * trm['output_score']:.2f}% per output), "
                f"LM answer {100 * lm['task_score']:.2f}% per task ({100 * lm['output_score']:.2f}% per output)")

    return _train(args, JointTrainConfig, train_joint, "trained parts", scores)


def _add_rerun(p: argparse.ArgumentParser, *, resume: str = "continue the run in --out with the same settings, "
               "skipping the tasks it holds (a fresh run if there is none)",
               overwrite: str = "replace the run in --out instead of refusing to touch it") -> None:
    """--resume and --overwrite, one or neither: what a rerun into an out dir that holds a run does."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help=resume)
    group.add_argument("--overwrite", action="store_true", help=overwrite)


def _add_train_command(group: argparse._SubParsersAction, what: str, config_help: str, example: str,
                       func: Callable[[argparse.Namespace], int]) -> None:
    """A `train` subcommand: --config, --resume | --overwrite, --quiet, KEY=VALUE overrides."""
    p = group.add_parser("train", help=f"{what} (also runs under `accelerate launch -m hybrid_pipeline.cli`)")
    p.add_argument("--config", metavar="YAML", help=config_help)
    _add_rerun(p, resume="continue from the last checkpoint in out_dir, with the same settings (a fresh run "
                         "if there is none)",
               overwrite="replace the training run in out_dir (its checkpoints, log and export)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_threads(p)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=f"config values that replace those of --config, "
                   f"e.g. max_steps=100 {example}")
    p.set_defaults(func=func)


def cmd_trm_eval(args: argparse.Namespace) -> int:
    from hybrid_pipeline.trm.evaluate import evaluate_checkpoint
    from hybrid_pipeline.trm.ttt import TTTConfig

    tasks, recorded = _shard(args, lambda: _load(args), "trm eval")
    say_threads()
    with recorded:
        summary = evaluate_checkpoint(args.checkpoint, tasks, args.out, data_label=args.data,
                                      batch_size=args.batch_size, max_augmentations=args.views,
                                      ttt=TTTConfig(steps=args.ttt_steps, init=args.ttt_init), resume=args.resume,
                                      overwrite=args.overwrite)
    print(f"wrote {args.out}/submission.json, results.jsonl, summary.json for {plural(summary['tasks'], 'task')}"
          + (f" ({summary['skipped_too_large']} too large for the model's canvas)" if summary["skipped_too_large"] else "")
          + (f"; {summary['unseen_in_training']} never seen in training ("
             + (_ttt_words(args.ttt_steps, args.ttt_init) or "blank puzzle embedding") + ")"
             if summary["unseen_in_training"] else ""))
    if "task_score" in summary:
        print(f"{args.data}: per-task pass@2 {100 * summary['task_score']:.2f}%, "
              f"per-output {100 * summary['output_score']:.2f}%, pass@1 {100 * summary['pass_at'][1]:.2f}%, "
              f"answer among candidates {100 * summary['oracle']:.2f}%")
    return EXIT_OK


# --------------------------------------------------------------------------------------------------
# baseline


def cmd_baseline(args: argparse.Namespace) -> int:
    from hybrid_pipeline.backbones.config import BackboneConfig
    from hybrid_pipeline.baseline import BaselineConfig, format_table, run_baseline
    from hybrid_pipeline.backbones.ttt import TTTConfig

    kind = args.kind or ("diffusion" if args.backbone == "tiny-random-diffusion" else "causal")
    try:  # the configs check their values; a ValueError here is a bad flag
        ttt = TTTConfig(steps=args.ttt_steps, lr=args.ttt_lr, rank=args.ttt_rank, alpha=2 * args.ttt_rank,
                        augment=args.ttt_augment, seed=args.seed)
        backbone = BackboneConfig(kind=kind, name_or_path=args.backbone, dtype=args.dtype,
                                  load_in_4bit=args.load_in_4bit, load_in_8bit=args.load_in_8bit,
                                  trust_remote_code=args.trust_remote_code)
        config = BaselineConfig(data=args.data, out_dir=args.out, tasks=_task_patterns(args.tasks), limit=args.limit,
                                backbone=backbone, attempts=args.attempts, augment=args.augment,
                                temperature=args.temperature, max_new_tokens=args.max_new_tokens,
                                seed=args.seed, ttt=ttt, resume=args.resume, overwrite=args.overwrite)
    except ValueError as e:
        raise UsageError(str(e)) from None
    tasks, recorded = _shard(args, lambda: _load(args), "baseline")
    say_threads()
    with recorded:
        summary = run_baseline(config, tasks=tasks)
    print(format_table(summary))
    print(f"wrote {args.out}/submission.json, results.jsonl, summary.json")
    return EXIT_OK


# --------------------------------------------------------------------------------------------------
# plan


def cmd_plan(args: argparse.Namespace) -> int:
    from hybrid_pipeline.arc.errors import ARCDataError
    from hybrid_pipeline.arc.tasks import load_tasks, unmatched_problem
    from planner.build import PlanSetup, build_planner
    from planner.run import run_plan

    try:
        setup = PlanSetup(proposers=tuple(args.proposers.split(",")) if args.proposers else None,
                          backbone=args.backbone, backbone_kind=args.backbone_kind, trm=args.trm,
                          hybrid=args.hybrid, attempts=args.attempts, ttt_steps=args.ttt_steps, ttt_init=args.ttt_init,
                          consistency_checks=not args.no_consistency_checks, seed=args.seed,
                          search_budget=args.search_budget, search_depth=args.search_depth,
                          search_seconds=args.search_seconds, search_feedback=not args.no_search_feedback,
                          search_order=args.search_order, search_view_budget=args.search_view_budget)
        if args.workers < 1:
            raise ValueError(f"--workers must be at least 1, got {args.workers}")
    except ValueError as e:
        raise UsageError(str(e)) from None
    loaded = load_tasks(args.data, ids=_task_patterns(args.tasks), limit=args.limit)
    if loaded.unmatched:  # a mistyped id stops the run before it starts; broken task files do not
        raise ARCDataError(unmatched_problem(args.data, loaded.unmatched))
    for problem in loaded.problems:  # reported now and again at the end; the good tasks still run
        error(str(problem))
    if not loaded.tasks:
        raise UsageError(f"{args.data}: no task to run")
    tasks, recorded = _shard(args, lambda: loaded.tasks, "plan")
    planner, meta = build_planner(setup)
    say_threads()
    meta["data"] = args.data
    with recorded:  # Ctrl-C and SIGTERM: the run writes its files, main() says so and exits 130 / 143
        run = run_plan(planner, tasks, args.out, resume=args.resume, overwrite=args.overwrite,
                       task_timeout_s=args.task_timeout, meta=meta, progress=not args.quiet, workers=args.workers)
    summary = run.summary
    print(f"{args.data}: {summary['finished']} of {plural(summary['tasks'], 'task')}, "
          f"{plural(summary['test_inputs'], 'test input')}, {plural(summary['attempts'], 'attempt')}, "
          f"{plural(summary['errors'], 'task error')}, {summary['seconds']:.1f} s")
    if "task_score" in summary:
        print(f"  per-task score    {100 * summary['task_score']:6.2f}%  ({summary['solved_tasks']} of "
              f"{plural(summary['scored_tasks'], 'task')} solved)")
        print(f"  per-output score  {100 * summary['output_score']:6.2f}%")
    print(f"wrote {args.out}/submission.json, results.jsonl, summary.json, report.html, run.json")
    if loaded.problems:
        error(f"{plural(len(loaded.problems), 'problem')} in the input (listed above); those tasks did not run")
        return EXIT_USAGE
    return EXIT_OK


# --------------------------------------------------------------------------------------------------
# shards


def _shard(args: argparse.Namespace, tasks: Callable[[], list], command: str):
    """(the tasks of `--shard K/N` among `tasks()`, a context that records the shard with the run's
    settings); without the flag, all of them and no change. Says in one line which tasks it runs."""
    from hybrid_pipeline.runs import Shard, in_shard, take_shard

    if not args.shard:
        return tasks(), in_shard(None)
    shard = Shard.parse(args.shard)  # a bad value stops the command before the tasks load
    sharded = take_shard(tasks(), shard, command=command, data=args.data)
    print(sharded.describe())
    return sharded.tasks, in_shard(sharded)


def _merging_plan():
    from hybrid_pipeline.merge import Mergeable
    from planner.run import finish_merged

    return Mergeable(finish_merged)


def _merging_baseline():
    from hybrid_pipeline.baseline import RESUME_KEYS, finish_merged
    from hybrid_pipeline.merge import Mergeable

    return Mergeable(finish_merged, RESUME_KEYS)


def _merging_trm_eval():
    from hybrid_pipeline.merge import Mergeable
    from hybrid_pipeline.trm.evaluate import RESUME_KEYS, finish_merged

    return Mergeable(finish_merged, RESUME_KEYS)


# The commands whose shards `merge` joins; each command's module is imported only to merge its runs.
MERGEABLE = {"plan": _merging_plan, "baseline": _merging_baseline, "trm eval": _merging_trm_eval}


def cmd_merge(args: argparse.Namespace) -> int:
    from hybrid_pipeline.merge import merge_runs

    merged = merge_runs(args.out, args.shard_dirs, commands=MERGEABLE, partial=args.partial,
                        overwrite=args.overwrite)
    print(merged.describe())
    summary = merged.summary
    if "task_score" in summary:
        print(f"  per-task score    {100 * summary['task_score']:6.2f}%")
        print(f"  per-output score  {100 * summary['output_score']:6.2f}%")
    return EXIT_OK


# --------------------------------------------------------------------------------------------------
# sandbox


def cmd_sandbox_run(args: argparse.Namespace) -> int:
    import json

    from verifier.sandbox import SandboxError, program_report_json

    try:
        report = program_report_json(args.program, args.data, args.task, time_limit_s=args.time_limit,
                                     memory_limit_mb=args.memory_limit)
    except SandboxError as e:  # the sandbox itself could not run: a fault of this machine, not the input
        error(f"sandbox failed: {e}")
        return EXIT_FAULT
    print(_compact_rows(json.dumps(report, indent=2)))
    return EXIT_OK


def _compact_rows(text: str) -> str:
    """Indented JSON with each grid row on one line ([1, 8, 2]) instead of one number per line."""
    import re

    return re.sub(r"\[\s+(-?\d+(?:,\s+-?\d+)*)\s+\]", lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text)


# --------------------------------------------------------------------------------------------------
# parser


class _HelpFormatter(argparse.HelpFormatter):
    """Adds "(default: X)" to an option's help where it has a default and the text does not already
    say what the default is (flags, which default to off, and options without a default get none)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or not _shows_default(action):
            return text
        return f"{text} (default: %(default)s)"


def _shows_default(action: argparse.Action) -> bool:
    """Whether an option's default is a value worth showing: not None, a flag's False, or an empty list."""
    default = action.default
    return not (default is None or default is False or default == argparse.SUPPRESS or default == [])


class _Parser(argparse.ArgumentParser):
    """Every parser and subparser of `hybrid-arc`: defaults shown in help, and usage errors in the
    same `error: ...` style as every other problem (after the usage line), exit 2."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"error: {self.prog}: {message}\n")


class _VersionAction(argparse.Action):
    """`--version`, looked up only when asked for, so that building the parser stays cheap."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="print the version of hybrid-arc and exit")

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from hybrid_pipeline.runs import package_version

        print(f"hybrid-arc {package_version()}")
        parser.exit(EXIT_OK)


def _add_selection(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tasks", help="comma-separated task ids or glob patterns (e.g. '00*,1a2b3c4d')")
    p.add_argument("--limit", type=_positive_int, metavar="N", help="keep only the first N selected tasks")


def _add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=_positive_int, metavar="N",
                   help="torch threads per process (default: OMP_NUM_THREADS, else MKL_NUM_THREADS, else the "
                        "cores this process may use, divided among the processes of the run)")


def _add_shard(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shard", metavar="K/N", help="run shard K of N of the selected tasks: those at positions K, "
                   "K+N, K+2N, ... (from 1), so N machines split them; join the out dirs with `hybrid-arc merge`")


def _add_ttt_steps(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--ttt-steps", type=_non_negative_int, default=0, metavar="N", help=help)


def _add_ttt_init(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ttt-init", choices=("mean", "nearest"), default="mean",
                   help="where a task's new puzzle-embedding rows start: the mean of the trained rows, or per view "
                        "the trained row (of 32 drawn per task) under which the TRM fits the task's demonstrations "
                        "best; nearest adapts even with --ttt-steps 0 (it then trains nothing)")


def _ttt_words(steps: int, init: str) -> str:
    """How unseen tasks were adapted, for a closing line; empty when they were not."""
    start = "rows from the nearest trained rows" if init == "nearest" else ""
    trained = f"adapted for {plural(steps, 'step')}" if steps else ""
    return ", ".join(w for w in (start, trained) if w)


def _int_at_least(low: int, expected: str) -> Callable[[str], int]:
    """An argparse type: an integer >= `low`, else "expected <expected>, got ..."."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1, "a positive integer")
_non_negative_int = _int_at_least(0, "an integer >= 0")


def _add_model_commands(commands: argparse._SubParsersAction) -> None:
    """`trm train`, `trm eval` and `joint train`."""
    trm = commands.add_parser("trm", help="train and evaluate the Tiny Recursive Model").add_subparsers(
        dest="trm_command", required=True, metavar="SUBCOMMAND")
    _add_train_command(trm, "train a TRM", "YAML with the values that differ from the paper's defaults "
                       "(experiments/configs/trm_tiny.yaml: a minutes-long CPU run)", "model.hidden_size=128",
                       cmd_trm_train)

    p = trm.add_parser("eval", help="vote over augmentations; write submission.json, results.jsonl, summary.json")
    p.add_argument("--checkpoint", required=True, help="an export dir (runs/x/final or a checkpoints/step-N dir)")
    p.add_argument("--data", required=True, help=DATA_HELP)
    _add_selection(p)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="views per forward pass: changes memory use, not results")
    p.add_argument("--views", type=_positive_int, help="augmentations voted per task (default: all trained)")
    _add_threads(p)
    _add_ttt_steps(p, "test-time training: a task the TRM never trained on gets new puzzle-embedding rows (one per "
                      "view), trained N steps on its demonstrations before it is predicted (0 with --ttt-init mean: the "
                      "blank row); a "
                      "setting of the run, which --resume must repeat")
    _add_ttt_init(p)
    _add_shard(p)
    _add_rerun(p, resume="continue the evaluation in --out (same checkpoint weights, views, --ttt-steps and "
                         "--ttt-init), "
                         "skipping the tasks it holds")
    p.set_defaults(func=cmd_trm_eval)

    joint = commands.add_parser("joint", help="train the hybrid (frozen LM + adapters + TRM + refiner)").add_subparsers(
        dest="joint_command", required=True, metavar="SUBCOMMAND")
    _add_train_command(joint, "train the hybrid jointly", "YAML with the values that differ from "
                       "JointTrainConfig's defaults (experiments/configs/joint_tiny.yaml: a minutes-long CPU run)",
                       "model.trm.hidden_size=64", cmd_joint_train)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hybrid-arc", description="LLM + Tiny Recursive Model toolkit for ARC-AGI.")
    parser.add_argument("--version", action=_VersionAction)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = commands.add_parser("data", help="inspect and validate ARC data").add_subparsers(
        dest="data_command", required=True, metavar="SUBCOMMAND")
    p = data.add_parser("stats", help="task and test-input counts, grid size histogram")
    p.add_argument("--data", required=True, help=DATA_HELP)
    _add_selection(p)
    p.set_defaults(func=cmd_data_stats)

    p = data.add_parser("show", help="draw a task in the terminal (plain digits with NO_COLOR)")
    p.add_argument("--data", required=True, help=DATA_HELP)
    p.add_argument("task_id", help="the id of the task to draw, e.g. 00576224")
    p.add_argument("--hide-solutions", action="store_true", help="do not draw test outputs")
    p.set_defaults(func=cmd_data_show)

    p = data.add_parser("check", help="validate task files; exit 2 listing every problem")
    p.add_argument("paths", nargs="+", metavar="PATH", help="task JSON files, directories, challenges files")
    p.add_argument("--require-solutions", action="store_true", help="every test input must have an output")
    p.set_defaults(func=cmd_data_check)

    p = commands.add_parser("score", help="score a Kaggle-format submission.json (a partial one on the tasks it "
                                          "holds, unless --strict)")
    p.add_argument("--submission", required=True, help="submission.json")
    p.add_argument("--data", required=True, help=DATA_HELP)
    _add_selection(p)
    p.add_argument("--strict", action="store_true",
                   help="every selected task must be in the submission (Kaggle's rule); exit 2 otherwise")
    p.add_argument("--json", action="store_true", help="also print the report as one JSON line")
    p.set_defaults(func=cmd_score)

    _add_model_commands(commands)

    p = commands.add_parser("baseline", help="LLM-only baseline: few-shot answers, optional augmentation voting")
    p.add_argument("--data", required=True, help=DATA_HELP)
    _add_selection(p)
    p.add_argument("--backbone", required=True, help="tiny-random | tiny-random-diffusion | local dir | hub id")
    p.add_argument("--kind", choices=("causal", "diffusion"), default=None,
                   help="how the backbone generates (default: diffusion for tiny-random-diffusion, else causal)")
    p.add_argument("--attempts", type=_positive_int, default=2, help="answers per prompt: greedy, then sampled")
    p.add_argument("--augment", type=int, default=0, metavar="K", help="random augmentations voted besides the original")
    p.add_argument("--temperature", type=float, default=0.7, help="for the sampled answers")
    p.add_argument("--max-new-tokens", type=_positive_int, help="answer length cap (default: enough for a 30x30 grid)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled answers and the augmentations")
    p.add_argument("--dtype", default="float32", help="torch dtype of the backbone, or auto")
    p.add_argument("--load-in-4bit", action="store_true", help="quantise the backbone to 4 bits (bitsandbytes nf4)")
    p.add_argument("--load-in-8bit", action="store_true", help="quantise the backbone to 8 bits (bitsandbytes)")
    p.add_argument("--trust-remote-code", action="store_true", help="needed by LLaDA checkpoints")
    _add_threads(p)
    _add_ttt_steps(p, "train a LoRA adapter on each task's demonstrations for N steps before answering it, "
                      "then remove it (0: none)")
    p.add_argument("--ttt-lr", type=float, default=1e-4, metavar="LR",
                   help="test-time training learning rate (AdamW, constant)")
    p.add_argument("--ttt-rank", type=_positive_int, default=8, metavar="R",
                   help="LoRA rank of the test-time adapter (alpha is twice it)")
    p.add_argument("--ttt-augment", type=_non_negative_int, default=0, metavar="K",
                   help="random augmentations of the task trained on besides the original")
    _add_shard(p)
    p.add_argument("--out", required=True, help="output directory")
    _add_rerun(p)
    p.set_defaults(func=cmd_baseline)

    p = commands.add_parser("plan", help="attempt tasks: propose, verify, retry with feedback; write a report")
    p.add_argument("--data", required=True, help=DATA_HELP)
    _add_selection(p)
    p.add_argument("--backbone", default="tiny-random",
                   help="local path or hub id of a causal LM (default: tiny-random, offline, random weights)")
    p.add_argument("--backbone-kind", choices=("causal", "diffusion"), default="causal",
                   help="how --backbone generates: left to right, or by unmasking (LLaDA)")
    p.add_argument("--trm", metavar="DIR", help="TRM export from `hybrid-arc trm train` (default: untrained)")
    _add_ttt_steps(p, "test-time training steps per task (0: none): the trm proposer's new puzzle-embedding rows "
                      "for a task it never trained on, and the llm proposer's LoRA adapter, trained on the task's "
                      "demonstrations and removed after it")
    _add_ttt_init(p)
    p.add_argument("--hybrid", metavar="DIR", help="hybrid export from joint training (default: untrained)")
    p.add_argument("--proposers", help="comma-separated: search, hybrid, llm, trm, program (default: search, "
                                       "and trm with --trm, hybrid with --hybrid, llm with --backbone)")
    p.add_argument("--attempts", type=_positive_int, default=4, help="attempts per test input")
    p.add_argument("--no-consistency-checks", action="store_true",
                   help="skip the verifier's leave-one-out and augmentation checks (fewer model calls)")
    p.add_argument("--task-timeout", type=float, metavar="SECONDS",
                   help="record a task as failed after this (default: no limit)")
    p.add_argument("--search-budget", type=int, default=300, metavar="STATES",
                   help="states the program search expands per task (deterministic, unlike --search-seconds)")
    p.add_argument("--search-depth", type=int, default=3, help="primitive calls per program before the "
                                                             "inferred last step")
    p.add_argument("--search-seconds", type=float, default=30.0,
                   help="wall-clock cap per task search; a capped task says so")
    p.add_argument("--search-order", choices=("breadth", "closest"), default="breadth",
                   help="expand a level's states in the order they were made (breadth), or those closest to "
                        "the demonstration outputs first")
    p.add_argument("--search-view-budget", type=int, default=100, metavar="STATES",
                   help="when no program fits, states a second search expands with each grid's colours renamed "
                        "by how often they occur (0: never)")
    p.add_argument("--no-search-feedback", action="store_true",
                   help="retries take the next program in rank order, ignoring the verifier's problems")
    p.add_argument("--workers", type=int, default=1, help="tasks solved in parallel processes")
    _add_threads(p)
    _add_shard(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the untrained models' random weights")
    p.add_argument("--out", required=True, help="output directory")
    _add_rerun(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_plan)

    p = commands.add_parser("merge", help="join the out dirs of one run's shards (--shard K/N) into one out dir")
    p.add_argument("out", metavar="OUT", help="output directory (empty or new, unless --overwrite)")
    p.add_argument("shard_dirs", nargs="+", metavar="SHARD_DIR", help="the out dirs of the shards")
    p.add_argument("--partial", action="store_true", help="merge though some shards are missing (the summary "
                                                          "names them)")
    p.add_argument("--overwrite", action="store_true", help="replace the run files in a non-empty OUT")
    p.set_defaults(func=cmd_merge)

    sandbox = commands.add_parser("sandbox", help="run untrusted candidate programs safely").add_subparsers(
        dest="sandbox_command", required=True, metavar="SUBCOMMAND")
    p = sandbox.add_parser("run", help="run transform(grid) from FILE on a task's inputs; print the report as JSON")
    p.add_argument("--program", required=True, help="Python source defining transform(grid) -> grid")
    p.add_argument("--data", required=True, help=DATA_HELP)
    p.add_argument("--task", required=True, help="task id")
    p.add_argument("--time-limit", type=float, default=2.0, help="seconds per grid")
    p.add_argument("--memory-limit", type=int, default=512, help="MiB for the child process")
    p.set_defaults(func=cmd_sandbox_run)
    return parser


def _stdout_reader_gone() -> bool:
    """True when stdout is a pipe whose reading end is closed (`| head` has exited).

    Tells that case apart from a broken pipe inside a command (to a child process), which is a fault.
    Where poll cannot say (no `select.poll`, stdout not a real file), a broken pipe is taken as stdout's.
    """
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):
        return True


def _silence_stdout() -> None:
    """Point stdout at the null device, so the flush at interpreter exit cannot fail a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            return _main(argv)
        finally:  # output still buffered is written here, where a broken pipe is handled, not at exit
            if sys.stdout is not None:
                sys.stdout.flush()
    except BrokenPipeError:
        if not _stdout_reader_gone():
            raise
        _silence_stdout()
        return EXIT_BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    from hybrid_pipeline.runs import interrupted_exit_code, stop_on_sigterm

    if hasattr(args, "threads"):  # before the command imports torch, which reads the count then
        from hybrid_pipeline.threads import local_processes, use_threads

        use_threads(args.threads, args.workers if hasattr(args, "workers") else local_processes())

    reports = _reports()
    try:
        with stop_on_sigterm():
            return func(args)
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (runs.Terminated); training says where it stopped
        if reports:
            print(f"interrupted: {stop}" if str(stop) else "interrupted", file=sys.stderr)
        return interrupted_exit_code(stop)
    except Exception as exc:  # noqa: BLE001 - sorted into user errors (exit 2) and faults (exit 1)
        lines = _user_error_lines(exc)
        if lines is None:
            raise
        for line in lines if reports else ():
            error(line)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
