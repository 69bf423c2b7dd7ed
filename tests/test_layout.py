"""The import map holds: data flows one way, and the shells stay shells.

The product is rag/ (load → normalise → chunk → embed → index → retrieve → answer → verify,
composed by rag.app). The CLI, the page (rag.ui) and the eval harness (rag.eval) sit on top
and reach the product through its app layer. These tests read the imports from the source,
so a new arrow that runs back up fails here, not in a review.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# What a shell may import from the product: the app and its vocabulary (settings, errors,
# result types), and the API the app serves.
APP_LAYER = {
    "rag.app",
    "rag.settings",
    "rag.errors",
    "rag.types",
    "rag.operations",
    "rag.remote",
    "rag.server",
}
# Eval tools that measure one stage on its own (the bench times each stage, the claim set
# scores the checker alone, check_gold reads corpora through the loader the index uses, the
# naive baseline loads the same files): they import that stage by design.
STAGE_TOOLS = {
    "bench.py",
    "bench_stages.py",
    "claims.py",
    "check_gold.py",
    "naive.py",
    "expansion_variants.py",
    "recheck.py",
}


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module, at module level) for every `import` / `from … import` in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, id(node) in top))
    return out


def _product_imports(path: Path) -> set[str]:
    return {
        m
        for m, _ in _imports(path)
        if m.startswith("rag.") and not m.startswith(("rag.ui", "rag.eval"))
    }


def test_the_product_never_imports_the_page_or_the_eval_harness():
    offenders = []
    for path in sorted((ROOT / "rag").glob("*.py")):
        for module, top_level in _imports(path):
            if not module.startswith(("rag.ui", "rag.eval")):
                continue
            # The CLI runs `rag ui` and `rag eval`: it may import them inside those commands.
            if path.name.startswith("cli") and not top_level:
                continue
            offenders.append(f"{path.name} imports {module}")
    assert not offenders, offenders


def test_the_page_reaches_the_product_through_the_app_layer_only():
    offenders = [
        f"ui/{path.name} imports {m}"
        for path in sorted((ROOT / "ui").glob("*.py"))
        for m in _product_imports(path) - APP_LAYER
    ]
    assert not offenders, offenders


def test_the_eval_harness_reaches_the_product_through_the_app_layer_only():
    offenders = [
        f"eval/{path.name} imports {m}"
        for path in sorted((ROOT / "eval").glob("*.py"))
        if path.name not in STAGE_TOOLS
        for m in _product_imports(path) - APP_LAYER
    ]
    assert not offenders, offenders


def test_the_cli_starts_without_the_page_the_harness_or_the_models():
    """`rag --help` and every command's start-up must not pay for Gradio, torch or llama.cpp,
    nor pull in the page or the eval harness before their command runs."""
    code = (
        "import json, sys\n"
        "from rag.cli import build_parser\n"
        "build_parser()\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    loaded = set(json.loads(out.stdout))
    heavy = {"rag.ui", "rag.eval", "gradio", "torch", "llama_cpp", "sentence_transformers"}
    assert not {m for m in loaded if m.split(".")[0] in heavy or m.startswith(tuple(heavy))}


def test_ui_and_eval_install_inside_the_project_namespace():
    """No top-level `ui` or `eval` package: they would collide with any other of that name."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert set(config["packages"]) == {"rag", "rag.ui", "rag.eval"}
    assert config["package-dir"] == {"rag.ui": "ui", "rag.eval": "eval"}
    import rag.eval
    import rag.ui

    assert Path(rag.ui.__file__).parent == ROOT / "ui"
    assert Path(rag.eval.__file__).parent == ROOT / "eval"


def test_no_product_module_grows_past_300_lines_without_saying_why():
    """A module over 300 lines has two jobs more often than not; one that has a single job
    says so in its docstring ("Over 300 lines, on purpose: …")."""
    long = []
    for path in sorted((ROOT / "rag").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        doc = ast.get_docstring(ast.parse(text)) or ""
        if text.count("\n") > 300 and "Over 300 lines, on purpose" not in doc:
            long.append(f"{path.name}: {text.count(chr(10))} lines")
    assert not long, long
