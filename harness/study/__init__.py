"""A study: several experiments (games, analysis, SAE passes) run as one resumable command.

`config` reads the study file, `layout` names the study directory's files; the runner starts each
experiment as a `harness` subprocess when its inputs are complete; `harness.status` reads the files
back into a report.
"""
