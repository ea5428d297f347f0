"""The folder tree is the architecture: these tests hold the import directions it promises
(README "What is inside") by reading every module's imports, and the README's map to the tree."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ["safevlm/engine.py", "safevlm/policy.py", "safevlm/config.py", "safevlm/taxonomy.py",
           "safevlm/images.py", "safevlm/errors.py", "safevlm/assets.py", "safevlm/model", "safevlm/store",
           "app"]


def modules_under(rel: str) -> list[Path]:
    path = ROOT / rel
    return [path] if path.is_file() else sorted(path.rglob("*.py"))


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def offenders(rels: list[str], forbidden: tuple[str, ...]) -> list[str]:
    return [f"{path.relative_to(ROOT)} imports {name}"
            for rel in rels for path in modules_under(rel) for name in sorted(imported(path))
            if name == forbidden or name.startswith(forbidden)]


def test_the_runtime_and_the_app_import_no_tool_no_generator_and_no_training():
    assert offenders(RUNTIME, ("safevlm.tools", "safevlm.data.generator", "train")) == []


def test_the_library_never_imports_the_app_or_training():
    assert offenders(["safevlm"], ("app", "train")) == []


def test_the_model_and_the_store_know_nothing_above_them():
    assert offenders(["safevlm/model"], ("safevlm.engine", "safevlm.cli", "safevlm.store")) == []
    assert offenders(["safevlm/store"], ("safevlm.model", "safevlm.engine", "torch")) == []
    # the app uses feedback/: it must stay free of the model and of the tools
    assert offenders(["safevlm/feedback"], ("torch", "safevlm.model", "safevlm.engine", "safevlm.tools")) == []


def test_the_readme_map_names_every_package_of_the_library():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## What is inside", 1)[1].split("```")[1]
    named = set(re.findall(r"\b([a-z_]+)/", block))
    packages = {p.parent.name for p in (ROOT / "safevlm").rglob("__init__.py")} - {"safevlm"}
    top = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert packages <= named, f"missing from the README map: {packages - named}"
    assert {"safevlm", "train", "app"} <= top and {"safevlm", "train", "app"} <= named
