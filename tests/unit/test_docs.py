"""The README documents what a user can set: every setting of `services.config.Settings` is a row
of its Configuration table, as the `PULSE_*` variable people type."""

from __future__ import annotations

from services.config import Settings
from tests.conftest import ROOT


def test_every_setting_is_in_the_readmes_configuration_table() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## Configuration") : readme.index("## Store layout")]
    rows = [line for line in table.splitlines() if line.startswith("| `PULSE_")]
    missing = [
        f"PULSE_{name.upper()}" for name in Settings.model_fields if f"`PULSE_{name.upper()}`" not in "".join(rows)
    ]
    assert not missing, f"add to the README's Configuration table: {', '.join(missing)}"
