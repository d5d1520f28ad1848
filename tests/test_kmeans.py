"""k-means: fitting (k-means++ + mini-batch, deterministic per seed), the quantizer, safetensors / .npy files, and
the explicit `convert kmeans-joblib` step for sklearn joblib models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechtok.convert import convert
from speechtok.errors import CheckpointError
from speechtok.quantizers.kmeans import (
    KMeans,
    KMeansConfig,
    fit_kmeans,
    inertia,
    kmeans_pp,
    load_centroids,
    save_centroids,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest.one_thread



def blobs(n_per=300, k=5, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = 10 * torch.randn(k, d, generator=g)
    x = (centres[:, None] + torch.randn(k, n_per, d, generator=g)).reshape(-1, d)
    return x, centres


def test_fit_finds_separated_clusters_and_is_deterministic():
    x, centres = blobs()
    a = fit_kmeans(x, 5, batch_size=256, steps=60, seed=1, progress=False)
    b = fit_kmeans(x, 5, batch_size=256, steps=60, seed=1, progress=False)
    assert torch.equal(a, b)
    # every true centre has a fitted centroid within 0.5 (points have unit spread)
    assert torch.cdist(centres, a).min(dim=1).values.max() < 0.5
    assert inertia(x, a) < 1.2 * x.shape[1]  # about D (unit variance per dimension)
    c = fit_kmeans(x, 5, batch_size=256, steps=60, seed=2, progress=False)
    assert not torch.equal(a, c)


def test_kmeans_pp_spreads_seeds():
    x, _ = blobs(k=5)
    seeds = kmeans_pp(x, 5, torch.Generator().manual_seed(0))
    assert torch.cdist(seeds, seeds).add(torch.eye(5) * 1e9).min() > 5  # one seed per blob


def test_quantizer_roundtrip_and_files(tmp_path):
    x, _ = blobs(d=4)
    cent = fit_kmeans(x, 5, steps=20, progress=False)
    q = KMeans(KMeansConfig(dim=4, codebook_size=5))
    q.centroids.copy_(cent)
    z = x[:50].T[None]  # [1, D, T]
    codes = q.encode(z)
    assert codes.shape == (1, 1, 50) and codes.dtype == torch.long
    assert torch.equal(q.decode(codes), cent[codes[0, 0]].T[None])
    assert torch.equal(codes[0, 0], torch.cdist(x[:50], cent).argmin(1))
    save_centroids(cent, tmp_path / "km.safetensors", {"features": "test"})
    back, meta = load_centroids(tmp_path / "km.safetensors")
    assert torch.equal(back, cent) and meta["features"] == "test"
    np.save(tmp_path / "km.npy", cent.numpy())
    assert torch.equal(load_centroids(tmp_path / "km.npy")[0], cent)


def test_centroid_file_errors(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(CheckpointError, match=r"obj\.npy: unreadable centroids"):
        load_centroids(tmp_path / "obj.npy")  # allow_pickle=False refuses object arrays
    (tmp_path / "km.bin").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="convert kmeans-joblib"):
        load_centroids(tmp_path / "km.bin")
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"bad\.safetensors: unreadable"):
        load_centroids(tmp_path / "bad.safetensors")


def test_convert_joblib_requires_explicit_unpickle(tmp_path):
    joblib = pytest.importorskip("joblib")
    cluster = pytest.importorskip("sklearn.cluster")
    x, _ = blobs(d=3)
    km = cluster.MiniBatchKMeans(n_clusters=5, random_state=0, n_init=3).fit(x.numpy())
    joblib.dump(km, tmp_path / "km.bin")
    with pytest.raises(CheckpointError, match="unpickles the file.*--unpickle"):
        convert("kmeans-joblib", tmp_path / "km.bin", tmp_path / "km.safetensors")
    out = convert("kmeans-joblib", tmp_path / "km.bin", tmp_path / "km.safetensors", trust_pickle=True)
    cent, meta = load_centroids(out)
    assert np.allclose(cent.numpy(), km.cluster_centers_)
    assert "MiniBatchKMeans" in meta["source_format"]
    q = KMeans(KMeansConfig(dim=3, codebook_size=5))
    q.centroids.copy_(cent)
    assert np.array_equal(q.encode(x.T[None])[0, 0].numpy(), km.predict(x.numpy()))
