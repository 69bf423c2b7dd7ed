"""One contract for both index backends (rag/store.py): Qdrant Edge in-process (the default)
and qdrant-client (RAG_QDRANT_URL). No Qdrant server is installable on the test machines, so
the client side runs against qdrant-client's own local mode (`QdrantClient(path=…)`), which
speaks the same API a server does. Real embeddings, real BM25 vectors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rag.embedding import SparseEncoder
from rag.settings import load_settings
from rag.store import CONFIG_ID, point_id
from rag.store_edge import EdgeStore
from rag.store_server import ServerStore

TEXTS = {
    "gan": (
        "GANs pit a generator against a discriminator; Ian Goodfellow introduced them in 2014.",
        "a.txt",
        "prose",
    ),
    "vae": (
        "Variational autoencoders encode inputs into a latent distribution "
        "and decode samples from it.",
        "a.txt",
        "prose",
    ),
    "diffusion": (
        "Diffusion models learn to reverse a gradual noising process, step by step.",
        "b.txt",
        "prose",
    ),
    "table": ("Model | Training stability\nGAN | Low\nVAE | High", "b.txt", "table"),
    "faq": (
        "Can a vector database store embeddings for retrieval? Yes, that is its main job.",
        "c.txt",
        "faq",
    ),
}


def open_backend(kind: str, path):
    if kind == "edge":
        return EdgeStore(load_settings(env={}, data_dir=path))
    from qdrant_client import QdrantClient

    return ServerStore(QdrantClient(path=str(path / "qdrant-local")), "rag", str(path))


@pytest.fixture(scope="module")
def vectors(dense_encoder):
    sparse = SparseEncoder()
    keys = list(TEXTS)
    dense = dense_encoder.encode([TEXTS[k][0] for k in keys])
    return {
        k: (dense[i].tolist(), sparse.encode([TEXTS[k][0]])[0]) for i, k in enumerate(keys)
    }, sparse


def rows(vectors):
    vecs, _ = vectors
    return [
        (
            point_id(k),
            vecs[k][0],
            vecs[k][1],
            {"text": t, "source": src, "sources": [src], "kind": kind, "key": k},
        )
        for k, (t, src, kind) in TEXTS.items()
    ]


@pytest.fixture(params=["edge", "client"])
def store(request, tmp_path, vectors, dense_encoder):
    s = open_backend(request.param, tmp_path)
    s.ensure_collections(dense_encoder.dim)
    s.upsert(rows(vectors))
    s.kind, s.path = request.param, tmp_path
    yield s
    s.close()


def keys(points) -> list[str]:
    return [p.payload["key"] for p in points]


@pytest.mark.parametrize("kind", ["edge", "client"])
def test_a_new_store_is_empty_and_answers_nothing(kind, tmp_path, dense_encoder):
    s = open_backend(kind, tmp_path)
    try:
        assert s.read_config() is None and s.read_manifest() == {} and s.count() == 0
        assert s.query("hybrid", [0.1] * dense_encoder.dim, ([1], [1.0]), 5) == []
        assert s.all_ids() == set() and list(s.payloads()) == []
    finally:
        s.close()


def test_points_are_stored_counted_and_read_back(store):
    assert store.count() == len(TEXTS)
    assert store.all_ids() == {point_id(k) for k in TEXTS}
    got = store.get([point_id("gan"), point_id("faq"), point_id("nothing")])
    assert {p["key"] for p in got.values()} == {"gan", "faq"}
    assert {pid: p["key"] for pid, p in store.payloads()} == {point_id(k): k for k in TEXTS}


def test_dense_sparse_and_hybrid_queries_rank_the_matching_passage_first(
    store, dense_encoder, vectors
):
    _, sparse = vectors
    question = "Who introduced generative adversarial networks with a discriminator?"
    qd = dense_encoder.encode_query(question).tolist()
    qs = sparse.encode_query(question)
    for mode in ("dense", "sparse", "hybrid"):
        got = store.query(mode, qd, qs, 3)
        assert got and got[0].payload["key"] == "gan", (store.kind, mode, keys(got))
        assert got[0].dense is not None and len(got[0].dense) == dense_encoder.dim
    # a keyword query shares no term with most passages: only those that match come back
    only = store.query("sparse", qd, sparse.encode_query("discriminator"), 5)
    assert keys(only) == ["gan"]
    assert store.query("sparse", qd, ([], []), 5) == []
    # hybrid without keyword terms is dense alone
    assert keys(store.query("hybrid", qd, ([], []), 5)) == keys(store.query("dense", qd, None, 5))


def test_filters_restrict_every_mode(store, dense_encoder, vectors):
    _, sparse = vectors
    qd = dense_encoder.encode_query("generator and discriminator").tolist()
    qs = sparse.encode_query("generator and discriminator models")
    for mode in ("dense", "sparse", "hybrid"):
        got = store.query(mode, qd, qs, 5, {"sources": ["b.txt"]})
        assert got and {p.payload["source"] for p in got} == {"b.txt"}, (mode, keys(got))
        got = store.query(mode, qd, qs, 5, {"kind": ["table", "faq"]})
        assert {p.payload["kind"] for p in got} <= {"table", "faq"}, (mode, keys(got))
        if mode != "sparse":  # every point has a dense vector: the filter leaves exactly those two
            assert sorted(keys(got)) == ["faq", "table"], (mode, keys(got))


def test_payload_updates_and_deletes_take_effect(store, dense_encoder):
    gan, vae = point_id("gan"), point_id("vae")
    store.set_payloads({gan: {"sources": ["a.txt", "z.txt"]}})
    assert store.get([gan])[gan]["sources"] == ["a.txt", "z.txt"]
    assert store.get([gan])[gan]["text"] == TEXTS["gan"][0]  # set, not overwrite
    qd = dense_encoder.encode_query("generator").tolist()
    assert keys(store.query("dense", qd, None, 5, {"sources": ["z.txt"]})) == ["gan"]
    store.delete([vae])
    assert store.count() == len(TEXTS) - 1 and vae not in store.all_ids()
    assert "vae" not in keys(
        store.query(
            "dense", dense_encoder.encode_query("variational autoencoder").tolist(), None, 5
        )
    )


def test_manifest_and_build_settings(store):
    store.write_config({"embed_model": "m", "dim": 384})
    entry = {
        "path": "/x/a.txt",
        "source": "a.txt",
        "sha256": "s",
        "ids": [point_id("gan")],
        "pending_ids": [],
    }
    store.write_manifest_entry(entry)
    store.write_manifest_entry(dict(entry, path="/x/b.txt", source="b.txt", ids=[]))
    assert store.read_config() == {"__config__": True, "embed_model": "m", "dim": 384}
    assert set(store.read_manifest()) == {"/x/a.txt", "/x/b.txt"}
    assert CONFIG_ID not in store.read_manifest()
    assert store.sources_by_name() == {"a.txt": 1, "b.txt": 0}
    store.delete_manifest_entry("/x/b.txt")
    assert set(store.read_manifest()) == {"/x/a.txt"}


def test_everything_survives_a_reopen_and_drop_empties_it(store, vectors, dense_encoder):
    store.write_config({"dim": dense_encoder.dim})
    store.write_manifest_entry({"path": "/x/a.txt", "source": "a.txt", "ids": []})
    store.close()
    again = open_backend(store.kind, store.path)
    try:
        assert again.count() == len(TEXTS) and set(again.read_manifest()) == {"/x/a.txt"}
        assert again.read_config()["dim"] == dense_encoder.dim
        again.drop()
        assert again.count() == 0 and again.read_config() is None and again.read_manifest() == {}
        again.ensure_collections(dense_encoder.dim)  # and it can be built again
        again.upsert(rows(vectors)[:1])
        assert again.count() == 1
    finally:
        again.close()


def test_both_backends_rank_alike(tmp_path, vectors, dense_encoder):
    """The same points and queries give the same top passages on either backend: switching
    to a server does not change what users get."""
    _, sparse = vectors
    stores = {kind: open_backend(kind, tmp_path / kind) for kind in ("edge", "client")}
    try:
        for s in stores.values():
            s.ensure_collections(dense_encoder.dim)
            s.upsert(rows(vectors))
        for question in (
            "Who introduced GANs?",
            "how does diffusion denoise",
            "which model trains stably",
            "store embeddings in a database",
        ):
            qd, qs = dense_encoder.encode_query(question).tolist(), sparse.encode_query(question)
            for mode in ("dense", "sparse", "hybrid"):
                got = {kind: keys(s.query(mode, qd, qs, 3)) for kind, s in stores.items()}
                assert got["edge"] == got["client"], (question, mode, got)
    finally:
        for s in stores.values():
            s.close()


def test_a_second_process_gets_store_locked(tmp_path, dense_encoder):
    s = open_backend("edge", tmp_path)
    s.ensure_collections(dense_encoder.dim)
    try:
        code = (
            "import sys\n"
            "from rag.errors import StoreLocked\n"
            "from rag.settings import load_settings\n"
            "from rag.store_edge import EdgeStore\n"
            "try:\n"
            f"    EdgeStore(load_settings(env={{}}, data_dir={str(tmp_path)!r}))\n"
            "except StoreLocked as exc:\n"
            "    print(exc.one_line()); sys.exit(4)\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 4, proc.stderr[-2000:]
        assert "in use by another rag process" in proc.stdout
    finally:
        s.close()
