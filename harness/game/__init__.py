"""The pure game core: rules, condition grids, prompts and answer parsing.

Nothing here does I/O, reads a clock or uses asyncio: every function is a plain computation
from its arguments (the slot machine's RNG is passed in), so the whole game is testable as data.
"""
