"""The ground rules of the architecture that code review alone would not keep."""

from __future__ import annotations

import ast
import json
import re
from importlib.metadata import version
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from service_a import Settings as ASettings
from service_a import create_app as create_a
from service_b import Settings as BSettings

ROOT = Path(__file__).parent.parent


def imported_modules(package: str) -> dict[str, set[str]]:
    """Give, for each module of `package`, the modules it imports."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize(
    ("package", "other"), [("service_a", "service_b"), ("service_b", "service_a")]
)
def test_services_never_import_each_other(package: str, other: str) -> None:
    """Neither service imports the other: they share only the wire and contracts/."""
    modules = imported_modules(package)
    assert len(modules) > 5  # the walk found the package
    crossing = {
        module: sorted(name for name in names if name == other or name.startswith(f"{other}."))
        for module, names in modules.items()
    }
    assert {} == {module: names for module, names in crossing.items() if names}


@pytest.mark.parametrize("document", ["service_b.openapi.json", "service_b.asyncapi.json"])
def test_documents_publish_the_package_version(document: str) -> None:
    """B's committed documents carry the version of the installed package, pyproject's."""
    published = json.loads((ROOT / "contracts" / document).read_text())["info"]["version"]
    assert version("service-pair") == published


def test_a_publishes_the_package_version() -> None:
    """A's OpenAPI document carries the version of the installed package, pyproject's."""
    assert version("service-pair") == create_a(ASettings()).openapi()["info"]["version"]


@pytest.mark.parametrize(
    ("prefix", "settings"), [("SERVICE_A_", ASettings), ("SERVICE_B_", BSettings)]
)
def test_every_setting_has_one_row_in_the_readme(prefix: str, settings: type[BaseSettings]) -> None:
    """Each environment variable a service reads is documented once in the README's tables."""
    readme = (ROOT / "README.md").read_text()
    rows = {
        f"{prefix}{name.upper()}": len(
            re.findall(rf"^\| `{prefix}{name.upper()}` \|", readme, flags=re.MULTILINE)
        )
        for name in settings.model_fields
    }
    assert len(rows) > 5
    assert {} == {variable: count for variable, count in rows.items() if count != 1}


def test_the_suite_runs_without_schemathesis_plugin(pytestconfig: pytest.Config) -> None:
    """Schemathesis' plugin stays off outside tests/fuzz: its hook can take minutes on a failure.

    It walks each exception group of a failing test again for every path to a shared
    context (exponential): a failing relay test with 101 sessions hung a CI run there.
    """
    assert not pytestconfig.pluginmanager.has_plugin("schemathesis")
