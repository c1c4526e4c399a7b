"""Every name a run directory, an SAE pass's folder or a study directory holds, in one place (as
SAELens's `constants.py`): code joins these to a folder, and never spells a name out again.

    RUN/manifest.json  games.jsonl  events.jsonl  run.lock  status.md  status.json  workers/
    RUN/sae/features/  features.parquet  features.csv  features_summary.csv  features_meta.json
    RUN/sae/pathway/   pathway_layers.csv  shards/
    RUN/sae/patch/     patch_trials.jsonl  patch_meta.json  patch_features.parquet  report.md
    RUN/sae/words/     words.parquet  words.csv  words_report.md  words_meta.json
    RUN/sae/train/     layer_N/ (an SAELens folder)
    REPORT/            report.md  tables/runs.csv
    STUDY/             study.toml  study.lock  study-events.jsonl  logs/  status.md  status.json  NAME/
"""

from __future__ import annotations

from pathlib import Path

# --- a run directory ---------------------------------------------------------------------------
MANIFEST_FILE = "manifest.json"
GAMES_FILE = "games.jsonl"
EVENTS_FILE = "events.jsonl"
LOCK_FILE = "run.lock"
WORKERS_DIR = "workers"
"""RUN/workers/worker-N.log: each worker process's own output."""

# --- the status report (of a run or a study directory) ----------------------------------------
STATUS_MD = "status.md"
STATUS_JSON = "status.json"

# --- SAE passes: RUN/sae/<name>/ --------------------------------------------------------------
SAE_DIR = "sae"
#: Each SAE pass by its one name: the command `harness sae NAME`, the folder RUN/sae/NAME, the
#: event kind NAME and the study kind `sae-NAME`.
SAE_PASSES = ("train", "features", "pathway", "patch", "words")
#: Older names still read: the patch pass once wrote RUN/sae/patching and events of kind "patching".
OLD_PASS_NAMES = {"patching": "patch"}


def sae_pass_dir(run_dir: Path, name: str) -> Path:
    """RUN/sae/NAME, the default output folder of a pass; an older run's folder where only it exists."""
    folder = Path(run_dir) / SAE_DIR / name
    for old, new in OLD_PASS_NAMES.items():
        if new == name and not folder.exists() and (Path(run_dir) / SAE_DIR / old).exists():
            return Path(run_dir) / SAE_DIR / old
    return folder

FEATURES_TABLE = "features.parquet"
FEATURES_CSV = "features.csv"
FEATURES_SUMMARY = "features_summary.csv"
FEATURES_META = "features_meta.json"
FEATURES_FIGURE = "features_effects.png"
PATHWAY_FIGURE = "pathway_heatmap.png"
PATHWAY_LAYERS = "pathway_layers.csv"
PATHWAY_SHARDS_DIR = "shards"
PATCH_TRIALS = "patch_trials.jsonl"
PATCH_META = "patch_meta.json"
PATCH_FEATURES = "patch_features.parquet"
PATCH_TESTS = "patch_tests.parquet"
PASS_REPORT = "report.md"
WORDS_TABLE = "words.parquet"
WORDS_CSV = "words.csv"
WORDS_REPORT = "words_report.md"
WORDS_META = "words_meta.json"

# --- an analysis report folder ------------------------------------------------------------------
REPORT_FILE = "report.md"
TABLES_DIR = "tables"
RUNS_TABLE = "runs.csv"

# --- a study directory --------------------------------------------------------------------------
STUDY_FILE = "study.toml"
STUDY_LOCK = "study.lock"
STUDY_EVENTS_FILE = "study-events.jsonl"
LOGS_DIR = "logs"
