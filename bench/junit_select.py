"""A pytest plugin for bench/ci_time.py: run only the tests a JUnit XML file lists.

    JUNIT_SELECT=baseline.xml python -m pytest -p junit_select      # bench/ on PYTHONPATH

A test is kept when its (classname, name) pair, as pytest's own --junitxml writes them, is in the
file; the others are reported as deselected. Loaded in every pytest-xdist worker too (``-p`` is
passed on to them), so each worker collects the same subset.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import pytest


def junit_ids(path: str) -> set[tuple[str, str]]:
    """The (classname, name) pairs of every test case in a JUnit XML file."""
    return {(case.get("classname"), case.get("name")) for case in ET.parse(path).getroot().iter("testcase")}


def junit_id(item: pytest.Item) -> tuple[str, str]:
    """``item`` as --junitxml names it: the module's dotted path, then any classes, then the name."""
    path, *scopes = item.nodeid.split("::")
    return ".".join([path.removesuffix(".py").replace("/", "."), *scopes[:-1]]), item.name


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = junit_ids(os.environ["JUNIT_SELECT"])
    kept = [item for item in items if junit_id(item) in wanted]
    dropped = [item for item in items if junit_id(item) not in wanted]
    items[:] = kept
    if dropped:
        config.hook.pytest_deselected(items=dropped)
