"""Benchmarks print figures and ratios against a baseline measured in the same run; they do not
assert timings. Run them with `make bench`."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/benchmarks/" in str(item.fspath):
            item.add_marker(pytest.mark.benchmark)
