"""`harness status`: the report of a study directory or of a plain run directory.

`facts` reads the files, `diagnose` judges each experiment (pure, "now" passed in), `headline`
reads each kind's results, `model` is the report as data (status.json), `render` writes it as
Markdown and `build` joins them. The monitor (`tui/study.py`) judges with the same `diagnose`.
"""
