"""Seeds derived from the run seed by hashing, so no result depends on scheduling order."""

import hashlib


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts (run seed, condition id, repetition, round, ...)."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1
