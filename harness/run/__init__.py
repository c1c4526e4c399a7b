"""Playing games in one process: the async runner (one task per game) and one worker's run
(run directory + backend + runner + event stream)."""
