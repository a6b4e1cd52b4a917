"""kNN accuracy of an embedding: the cheap quality signal of an encoder (no training, labels only for scoring)."""

from __future__ import annotations

import numpy as np


def knn_accuracy(
    bank: np.ndarray,
    bank_labels,
    queries: np.ndarray,
    query_labels,
    *,
    k: int = 20,
    temperature: float = 0.1,
    batch_size: int = 1024,
) -> float:
    """Share of ``queries`` whose weighted k-nearest-neighbour vote in ``bank`` is their label, in [0, 1].

    Higher = better embedding.  Cosine similarity, votes weighted by
    exp(sim / temperature) (the InstDisc / lightly ``knn_predict`` monitor used
    in self-supervised benchmarks).  The bank and the queries must be disjoint.
    """
    import torch
    from lightly.utils.benchmarking import knn_predict

    bank_labels = np.asarray(bank_labels).astype(str)
    query_labels = np.asarray(query_labels).astype(str)
    classes, bank_codes = np.unique(bank_labels, return_inverse=True)
    lookup = {c: i for i, c in enumerate(classes)}
    query_codes = np.array([lookup.get(c, -1) for c in query_labels])  # a class absent from the bank never matches
    if len(bank) == 0 or len(queries) == 0:
        raise ValueError("kNN accuracy needs a non-empty bank and query set")
    fb = torch.nn.functional.normalize(torch.as_tensor(np.asarray(bank, np.float32)), dim=1).T.contiguous()
    fl = torch.as_tensor(bank_codes, dtype=torch.long)
    k = max(1, min(int(k), len(bank)))
    correct = 0
    for start in range(0, len(queries), batch_size):
        q = torch.nn.functional.normalize(
            torch.as_tensor(np.asarray(queries[start : start + batch_size], np.float32)), dim=1
        )
        pred = knn_predict(q, fb, fl, len(classes), knn_k=k, knn_t=temperature)[:, 0].numpy()
        correct += int((pred == query_codes[start : start + batch_size]).sum())
    return correct / len(queries)
