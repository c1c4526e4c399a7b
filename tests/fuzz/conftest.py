"""Hypothesis settings for the fuzz suite: a bounded number of examples per property in `make test`
(profile "default"); `HYPOTHESIS_PROFILE=long` runs 20 times as many. No example database is
written into the tree."""

import os

from hypothesis import HealthCheck, settings

EXAMPLES = 30
_common = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("default", max_examples=EXAMPLES, **_common)
settings.register_profile("long", max_examples=20 * EXAMPLES, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
