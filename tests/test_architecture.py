"""The layout holds: layers import downwards only, no import cycles, one door to the Hub, one copy of the mapping.

Layers, top to bottom: ui -> jobs -> data / estimate -> hub -> foundation (settings, errors, catalog, validation, steps).
Every import counts, including those inside functions (they must not be a way around a cycle).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "trainer_space"
FOUNDATION = {"settings", "errors", "catalog", "validation", "steps", "__init__"}
LAYERS = {"foundation": 0, "hub": 1, "data": 2, "estimate": 2, "jobs": 3, "ui": 4}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    return "foundation" if len(parts) < 2 or parts[1] in FOUNDATION else parts[1]


def imports_of(path: Path) -> set[str]:
    """Every trainer_space module `path` imports (relative imports resolved; `from . import x` included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("trainer_space")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            else:
                target = node.module or ""
            if not target.startswith("trainer_space"):
                continue
            for alias in node.names:  # `from .data import detect` imports the module trainer_space.data.detect
                sub = f"{target}.{alias.name}"
                found.add(sub if (PACKAGE.parent / (sub.replace(".", "/") + ".py")).exists() else target)
    return found


GRAPH = {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def test_layers_import_downwards_only():
    upward = []
    for module, targets in GRAPH.items():
        for target in targets:
            src, dst = layer_of(module), layer_of(target)
            if LAYERS[dst] > LAYERS[src] or (LAYERS[dst] == LAYERS[src] and src != dst):
                upward.append(f"{module} -> {target}")
    assert not upward, "imports against the layers:\n" + "\n".join(sorted(upward))


def test_no_import_cycles():
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(GRAPH.get(node, ())):
            if nxt not in GRAPH or nxt == node:
                continue
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_hub_has_one_door():
    """Only hub/ builds an HfApi or calls huggingface_hub's download functions; the token is read nowhere else."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        inside_hub = path.parent.name == "hub"
        if not inside_hub and ("HfApi(" in text or "hf_hub_download(" in text or "snapshot_download(" in text):
            offenders.append(f"{path.relative_to(ROOT)} talks to the Hub directly")
        if path.name != "session.py" and "._token" in text:
            offenders.append(f"{path.relative_to(ROOT)} reads a session's token")
    assert not offenders, "\n".join(offenders)


def test_the_jobs_copy_of_the_mapping_is_fresh():
    """Like `ruff format --check`: fails when job_templates/train.py's spliced copy differs from the module."""
    from trainer_space.data import splice

    train_text = splice.TRAIN_PATH.read_text(encoding="utf-8")
    assert splice.spliced(train_text) == train_text, "run: python -m trainer_space.data.splice"
    out = subprocess.run([sys.executable, "-m", "trainer_space.data.splice", "--check"], cwd=ROOT, capture_output=True)
    assert out.returncode == 0, out.stdout


def test_a_stale_copy_is_detected(tmp_path, monkeypatch):
    from trainer_space.data import splice

    stale = splice.TRAIN_PATH.read_text(encoding="utf-8").replace('"human": "user"', '"human": "person"', 1)
    copy = tmp_path / "train.py"
    copy.write_text(stale, encoding="utf-8")
    monkeypatch.setattr(splice, "TRAIN_PATH", copy)
    assert splice.main(["--check"]) == 1
    assert splice.main([]) == 0 and splice.main(["--check"]) == 0  # rewritten
    assert copy.read_text(encoding="utf-8") == splice.TRAIN_PATH.read_text(encoding="utf-8")


def test_the_mapping_module_needs_only_the_standard_library():
    tree = ast.parse((PACKAGE / "data" / "mapping.py").read_text(encoding="utf-8"))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no package imports: the job runs this code on its own"
            roots.add((node.module or "").split(".")[0])
    assert roots <= set(sys.stdlib_module_names) | {"__future__"}, roots


@pytest.mark.parametrize("method", ["sft", "dpo", "grpo", "reward", "kto"])
def test_no_policy_branches_on_method_names_in_the_estimate(method):
    """The estimate asks the method table (catalog.METHODS), never `if method == ...`."""
    text = (PACKAGE / "estimate" / "model.py").read_text(encoding="utf-8")
    assert f'== "{method}"' not in text and f"'{method}'" not in text
