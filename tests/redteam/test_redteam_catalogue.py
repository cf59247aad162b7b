"""The bar of issue 12 stays: every red-team category has at least ``MIN_ATTEMPTS`` attempts, every
marker names a known category, and the README's table is the one the tests make."""

from __future__ import annotations

import re

from catalogue import CATEGORIES, HERE, MIN_ATTEMPTS, attempts, table


def test_every_category_has_enough_attempts():
    found = attempts()
    unknown = sorted({a.category for a in found} - set(CATEGORIES))
    assert not unknown, f"unknown red-team categories: {unknown}"
    short = {k: n for k in CATEGORIES if (n := sum(a.category == k for a in found)) < MIN_ATTEMPTS}
    assert not short, f"categories under {MIN_ATTEMPTS} attempts: {short}"


def test_the_readme_carries_the_current_table():
    readme = (HERE / "README.md").read_text()
    block = re.search(r"<!-- catalogue -->\n(.*?)\n<!-- /catalogue -->", readme, re.S)
    assert block, "README.md lacks the <!-- catalogue --> block"
    assert block.group(1).strip() == table().strip(), "run: python tests/redteam/catalogue.py"
