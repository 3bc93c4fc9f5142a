"""Each plugin declares what it imports: its package's third-party imports in ``dependencies``, its tests' in
``dependencies`` or the ``[test]`` extra.

``scripts/plugin-test NAME`` finds an undeclared import by running the plugin's tests in a virtualenv holding only
the core, omha-testing and that plugin, but it takes minutes per plugin; this static check reads every import
with :mod:`ast` in a second and names the plugin, the file and the module. Also checked: the plugins' test
modules have names unique across plugins (their dirs have no ``__init__.py``, so each is imported by its bare
name: two ``test_check.py`` would collide in one pytest session).
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = sorted(p for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").exists())

#: distributions whose import name is not their name with dashes as underscores
IMPORT_NAMES = {
    "pyserial": {"serial"},
    "snmpsim-data": {"snmpsim_data"},
    "prometheus-client": {"prometheus_client"},
}


def dist_name(requirement: str) -> str:
    """``"pysnmp>=7.1,<8"`` -> ``"pysnmp"`` (lower case, runs of ``-_.`` as one dash, as PEP 503 says)."""
    name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert name, f"unparsable requirement {requirement!r}"
    return re.sub(r"[-_.]+", "-", name.group(1)).lower()


def import_names(requirements: list[str]) -> set[str]:
    names: set[str] = set()
    for requirement in requirements:
        dist = dist_name(requirement)
        names |= IMPORT_NAMES.get(dist, {dist.replace("-", "_")})
    return names


def optional_imports(tree: ast.AST) -> set[int]:
    """The ids of the import statements inside ``try: ... except ImportError`` (an optional feature's: its import
    may be declared in an extra other than ``[test]``, as ``cryptography`` is in fence_powerstrip's ``[v3]``)."""
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try):
            caught = {ast.unparse(h.type) for h in node.handlers if h.type is not None}
            if caught & {"ImportError", "ModuleNotFoundError"}:
                guarded |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return guarded


def top_level_imports(path: Path) -> dict[str, tuple[int, bool]]:
    """Every absolute import's top-level module in ``path``: the line of its first import, and whether every
    import of it is optional (guarded by ``except ImportError``)."""
    found: dict[str, tuple[int, bool]] = {}
    tree = ast.parse(path.read_text(), str(path))
    guarded = optional_imports(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        else:
            continue
        for module in modules:
            line, optional = found.get(module.split(".")[0], (node.lineno, True))
            found[module.split(".")[0]] = (min(line, node.lineno), optional and id(node) in guarded)
    return found


def undeclared(plugin: Path) -> list[str]:
    project = tomllib.loads((plugin / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    runtime = import_names(project.get("dependencies", []))
    test = runtime | import_names(extras.get("test", []))
    optional = runtime | import_names([r for name, reqs in extras.items() if name != "test" for r in reqs])
    package = f"omha_{plugin.name}"
    local_tests = {p.stem for p in (plugin / "tests").glob("*.py")}
    problems = []
    for path in sorted(plugin.rglob("*.py")):
        rel = path.relative_to(plugin)
        if rel.parts[0] not in (package, "tests"):
            continue  # build/ and the like
        declared = runtime if rel.parts[0] == package else test
        where = "dependencies" if rel.parts[0] == package else "dependencies or the [test] extra"
        for module, (line, is_optional) in top_level_imports(path).items():
            if module in sys.stdlib_module_names or module == package or module == "__future__":
                continue
            if rel.parts[0] == "tests" and module in local_tests:
                continue
            if module in declared or (is_optional and rel.parts[0] == package and module in optional):
                continue
            problems.append(f"plugin {plugin.name}: {rel}:{line} imports {module!r}, not in its {where}")
    return problems


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.name)
def test_every_third_party_import_is_declared(plugin: Path) -> None:
    problems = undeclared(plugin)
    assert not problems, "\n".join(problems)


def test_the_check_names_an_undeclared_import(tmp_path: Path) -> None:
    plugin = tmp_path / "demo"
    (plugin / "omha_demo").mkdir(parents=True)
    (plugin / "tests").mkdir()
    (plugin / "pyproject.toml").write_text(
        '[project]\nname = "omha-demo"\ndependencies = ["omha-core>=0.1", "pyserial>=3"]\n'
        '[project.optional-dependencies]\ntest = ["pytest>=8", "omha-testing"]\nv3 = ["cryptography"]\n'
    )
    (plugin / "omha_demo" / "__init__.py").write_text("import os\nimport serial\nimport omha_core\nimport pyasn1\n")
    (plugin / "omha_demo" / "v3.py").write_text("try:\n    import cryptography\nexcept ImportError:\n    pass\n")
    (plugin / "tests" / "helper.py").write_text("")
    (plugin / "tests" / "test_demo.py").write_text("import pytest, helper\nfrom omha_testing import lan\nimport yaml\n")
    assert undeclared(plugin) == [
        "plugin demo: omha_demo/__init__.py:4 imports 'pyasn1', not in its dependencies",
        "plugin demo: tests/test_demo.py:3 imports 'yaml', not in its dependencies or the [test] extra",
    ]


def test_plugin_test_modules_have_unique_names() -> None:
    names = Counter(p.name for plugin in PLUGINS for p in (plugin / "tests").glob("*.py") if p.name != "conftest.py")
    assert not [n for n, count in names.items() if count > 1], "rename them: plugins' test dirs share sys.path"
    assert not list(ROOT.glob("plugins/*/tests/__init__.py")), "plugins' test dirs must not be packages"
