"""Many processes, many GPUs: splitting a run's games, launching one worker process (or Ray
actor) per device, watching them, and recovering from a dead one."""
