"""The naive retrieval baseline every figure is held against: what anyone would write in an
afternoon. Fixed 500-character chunks packed from whole lines, all-MiniLM-L6-v2, BM25 (IDF by
Qdrant), reciprocal rank fusion, qdrant-client's in-memory mode. It shares rag's loader (so
HTML and PDF read the same) and its two encoders, and nothing else: no structure, no context,
no expansion.
"""

from __future__ import annotations

from pathlib import Path

CHUNK_CHARS = 500


def line_chunks(text: str, size: int = CHUNK_CHARS) -> list[str]:
    chunks, current = [], ""
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        while len(line) > size:  # a line longer than a chunk is cut where it must be
            if current:
                chunks.append(current)
                current = ""
            chunks.append(line[:size])
            line = line[size:]
        if current and len(current) + 1 + len(line) > size:
            chunks.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    if current:
        chunks.append(current)
    return chunks


class NaiveRetriever:
    def __init__(self, corpus: Path, dense, sparse):
        from qdrant_client import QdrantClient, models

        from rag.loaders import find_files, iter_documents

        self.dense, self.sparse, self.models = dense, sparse, models
        self.texts: list[str] = []
        files, _ = find_files([Path(corpus)])
        for _found, doc, _reason in iter_documents(files):
            if doc is not None:
                self.texts.extend(line_chunks(doc.text))
        self.client = QdrantClient(":memory:")
        self.client.create_collection(
            "naive",
            vectors_config={
                "dense": models.VectorParams(size=dense.dim, distance=models.Distance.COSINE)
            },
            sparse_vectors_config={"bm25": models.SparseVectorParams(modifier=models.Modifier.IDF)},
        )
        vectors = dense.encode(self.texts)
        points = []
        for i, (text, vec, (idx, val)) in enumerate(
            zip(self.texts, vectors, sparse.encode(self.texts))
        ):
            points.append(
                models.PointStruct(
                    id=i,
                    payload={"text": text},
                    vector={
                        "dense": vec.tolist(),
                        "bm25": models.SparseVector(indices=idx, values=val),
                    },
                )
            )
        self.client.upload_points("naive", points, batch_size=256)

    def search(self, query: str, top_k: int = 10) -> list[dict]:
        m = self.models
        idx, val = self.sparse.encode_query(query)
        result = self.client.query_points(
            "naive",
            prefetch=[
                m.Prefetch(
                    query=self.dense.encode_query(query).tolist(), using="dense", limit=top_k * 2
                ),
                m.Prefetch(
                    query=m.SparseVector(indices=idx, values=val), using="bm25", limit=top_k * 2
                ),
            ],
            query=m.FusionQuery(fusion=m.Fusion.RRF),
            limit=top_k,
            with_payload=True,
        )
        return [
            {"rank": r, "text": p.payload["text"], "score": p.score}
            for r, p in enumerate(result.points, 1)
        ]
