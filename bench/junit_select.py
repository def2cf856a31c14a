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
    """``item`` as --junitxml names it: the module's dotted path, then any classes, then the name (the
    node id is cut at its parameters first, which may themselves hold "::")."""
    path, *scopes = item.nodeid.partition("[")[0].split("::")
    return ".".join([path.removesuffix(".py").replace("/", "."), *scopes[:-1]]), item.name


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "JUNIT_SELECT" not in os.environ:
        raise pytest.UsageError("junit_select: set JUNIT_SELECT to the JUnit XML file whose tests to run")
    wanted = junit_ids(os.environ["JUNIT_SELECT"])
    chosen = {item.nodeid: junit_id(item) in wanted for item in items}
    dropped = [item for item in items if not chosen[item.nodeid]]
    items[:] = [item for item in items if chosen[item.nodeid]]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
