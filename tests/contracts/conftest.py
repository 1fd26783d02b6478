"""Fixtures for the contract tests: where A's consumer tests write the pact."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from tests.contracts import quick_relays

ROOT = Path(__file__).parents[2]
CONTRACTS = ROOT / "contracts"
PACT_NAME = "service-a-service-b.json"
COMMITTED_PACT = CONTRACTS / "pacts" / PACT_NAME

# pact-python reports anonymous usage unless told not to; tests never phone home.
os.environ.setdefault("PACT_DO_NOT_TRACK", "true")
logging.getLogger("pact").setLevel(logging.WARNING)
# pact-python's relay servers would take up to 0.5 s to stop after each verification.
quick_relays.apply()


@pytest.fixture(scope="session")
def pact_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Give the folder A's consumer tests write the pact into, emptied of any earlier pact.

    `PACT_OUTPUT_DIR` names it (`nox -s contracts` compares what lands there with
    contracts/pacts); otherwise a temporary folder, so a test run never touches contracts/.
    """
    folder = Path(os.environ.get("PACT_OUTPUT_DIR") or tmp_path_factory.mktemp("pacts"))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PACT_NAME).unlink(missing_ok=True)
    return folder
