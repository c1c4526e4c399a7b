"""`harness study run STUDY.toml`: the whole study, each experiment a `harness` command in its
folder of the study directory, resumable (docs/study.md)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    study = sub.add_parser(
        "study", help="Run a whole study: games, analysis and SAE passes from one study file.",
        description="Run a whole study from one study file (docs/study.md).",
    )
    study_sub = study.add_subparsers(dest="study_command", metavar="WHAT", required=True)
    p = study_sub.add_parser(
        "run",
        help="Run every experiment of a study file (rerun the same command to resume).",
        description="Start each experiment of STUDY.toml as a `harness` command once the experiments "
        "it reads are complete; experiments on different devices run at the same time. A rerun skips "
        "the complete experiments and resumes the others. Ctrl-C stops every command (each saves its "
        "work) and exits 130.",
    )
    p.add_argument("study", type=Path, metavar="STUDY.toml", help="The study file.")
    p.add_argument("--out", type=Path, help="Study directory (study file: out).")
    p.add_argument(
        "--ray", metavar="ADDRESS",
        help="Run the games experiments' workers as Ray actors ('auto', 'local' or an address), "
        "as `harness run games --ray` does.",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.rundir.files import STUDY_LOCK
    from harness.rundir.lock import RunLock
    from harness.status.build import write_status
    from harness.study.config import load_study
    from harness.study.layout import StudyDir
    from harness.study.plan import device_conflicts, plan_study
    from harness.study.runner import StudyRunner, adopt_study_file

    study = load_study(args.study)
    root = Path(args.out or study.out).resolve()
    argvs = plan_study(study, root, args.ray)  # every mistake surfaces before anything runs
    study_dir = StudyDir(root)
    with RunLock(root, STUDY_LOCK):
        adopt_study_file(args.study, study_dir)
        print(f"study {study.name}: {len(argvs)} experiments in {root}", flush=True)
        for a, b, device in device_conflicts(study):
            print(f"  {a} and {b} share {device}: one waits for the other", flush=True)
        code = StudyRunner(study, study_dir, argvs).run()
        print(f"status: {write_status(root)}", flush=True)  # still under the lock: no runner writes
    return code
