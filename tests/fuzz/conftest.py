"""Hypothesis profiles: ``ci`` (the default) is derandomized and bounded; ``deep`` searches longer.

Run ``HYPOTHESIS_PROFILE=deep python -m pytest tests/fuzz`` to fuzz for longer than CI does.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=150, deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("deep", max_examples=5000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
