"""Live terminal monitor of runs (`harness monitor`). Nothing is re-exported here: `harness`
imports `tui.command` for its parser, and that must not pull in Textual."""
