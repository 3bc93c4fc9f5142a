"""``bench/`` imports nothing from the tests (the core's ``tests/`` or a plugin's ``plugins/<name>/tests``): the
emulators and harnesses the benchmarks share with the tests live in the omha-testing distribution
(``testing/``), so that moving or renaming a test never breaks a benchmark."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: module names a test directory provides: the core's package, and the plugins' test modules (imported by name)
TEST_MODULES = {"tests"} | {p.stem for p in ROOT.glob("plugins/*/tests/*.py")}


def test_bench_imports_nothing_from_the_tests() -> None:
    found = []
    for path in sorted((ROOT / "bench").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("tests."):
                modules = [node.value]  # a subprocess's "python -m tests.something"
            elif isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            found += [f"{where} imports {m}" for m in modules if m.split(".")[0] in TEST_MODULES]
    assert not found, "move what bench needs into omha_testing (testing/) or bench itself:\n" + "\n".join(found)
