"""k-means as a quantizer (one codebook of centroids), its fitting, and its files.

Fitting: k-means++ initialisation on a sample, then mini-batch k-means (Sculley 2010: per-centroid learning rates
1 / count), on CPU or GPU, deterministic for a seed (a torch.Generator drives every draw). Files: safetensors
(`centroids` [K, D] + metadata) written here; `.npy` centroids [K, D] load directly (allow_pickle=False).
fairseq / textlesslib joblib models need an unpickle: `speechtok convert kmeans-joblib` (convert/kmeans.py).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from torch import Tensor

from ..errors import CheckpointError
from .base import QuantizeOut, Quantizer


@dataclass(frozen=True)
class KMeansConfig:
    dim: int = 192  # feature dimension D
    codebook_size: int = 100  # K


class KMeans(Quantizer):
    """features [B, D, T] <-> unit codes [B, 1, T] (nearest centroid, Euclidean)."""

    num_codebooks = 1

    def __init__(self, cfg: KMeansConfig):
        super().__init__()
        self.cfg = cfg
        self.codebook_size = cfg.codebook_size
        self.register_buffer("centroids", torch.zeros(cfg.codebook_size, cfg.dim))  # [K, D]

    @property
    def codebooks(self) -> Tensor:
        """[1, K, D]"""
        return self.centroids[None]

    def forward(self, z: Tensor, mask: Tensor | None = None) -> QuantizeOut:
        codes = self.encode(z)
        return QuantizeOut(z_q=self.decode(codes), codes=codes)

    @torch.no_grad()
    def encode(self, z: Tensor, n_q: int | None = None) -> Tensor:
        """z [B, D, T] -> codes [B, 1, T]"""
        if n_q not in (None, 1):
            raise ValueError(f"n_q={n_q}: k-means has one codebook")
        flat = rearrange(z, "b d t -> (b t) d")
        idx = nearest(flat, self.centroids)
        return rearrange(idx, "(b t) -> b 1 t", b=z.shape[0])

    def decode(self, codes: Tensor) -> Tensor:
        """codes [B, 1, T] -> centroids [B, D, T]"""
        return rearrange(self.centroids[codes[:, 0]], "b t d -> b d t")


def nearest(x: Tensor, centroids: Tensor, chunk: int = 65536) -> Tensor:
    """x [N, D], centroids [K, D] -> [N] index of the nearest centroid; ||c||^2 - 2 x.c, in chunks of rows."""
    c2 = (centroids * centroids).sum(-1)
    out = [torch.addmm(c2, part, centroids.t(), alpha=-2.0).argmin(-1) for part in x.split(chunk)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long, device=x.device)


# -- fitting ---------------------------------------------------------------------------------------------------


def kmeans_pp(x: Tensor, k: int, gen: torch.Generator) -> Tensor:
    """k-means++ seeding: x [N, D] -> [k, D], each new centre drawn with probability ~ squared distance."""
    n = x.shape[0]
    if n < k:
        raise ValueError(f"k-means++ needs at least k={k} points, got {n}")
    first = int(torch.randint(n, (1,), generator=gen, device=gen.device))
    centres = [x[first]]
    d2 = ((x - x[first]) ** 2).sum(-1)
    for _ in range(1, k):
        probs = d2 / d2.sum() if float(d2.sum()) > 0 else torch.full_like(d2, 1.0 / n)
        i = int(torch.multinomial(probs, 1, generator=gen))
        centres.append(x[i])
        d2 = torch.minimum(d2, ((x - x[i]) ** 2).sum(-1))
    return torch.stack(centres)


def fit_kmeans(x: Tensor | np.ndarray, k: int, *, batch_size: int = 10000, steps: int = 100, init_size: int = 20000,
               seed: int = 0, device: str | torch.device = "cpu", progress: bool = True) -> Tensor:
    """Mini-batch k-means on x [N, D] (float) -> centroids [k, D] float32 on CPU.

    k-means++ on `init_size` random rows, then `steps` mini-batches of `batch_size` rows: each centroid moves
    towards the mean of its batch members with rate 1 / (its total count so far). Same seed, same device: same
    centroids.
    """
    from ..runtime.progress import progress as show_progress

    x = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x, dtype=torch.float32).to(device)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"k-means needs features [N, D], got shape {tuple(x.shape)}")
    gen = torch.Generator(device=x.device).manual_seed(seed)
    n = x.shape[0]
    sample = x[torch.randperm(n, generator=gen, device=x.device)[: max(init_size, k)]]
    centroids = kmeans_pp(sample, k, gen)
    counts = torch.zeros(k, device=x.device)
    for _ in show_progress(range(steps), desc=f"k-means K={k}", unit="batch", disable=not progress):
        batch = x[torch.randint(n, (min(batch_size, n),), generator=gen, device=x.device)]
        idx = nearest(batch, centroids)
        batch_counts = torch.bincount(idx, minlength=k).float()
        sums = torch.zeros_like(centroids).index_add_(0, idx, batch)
        counts += batch_counts
        seen = batch_counts > 0
        rate = (batch_counts / counts.clamp(min=1))[:, None]  # = count_b / count_total: Sculley's 1/n per point
        means = sums / batch_counts.clamp(min=1)[:, None]
        centroids = torch.where(seen[:, None], centroids + rate * (means - centroids), centroids)
    return centroids.float().cpu()


def inertia(x: Tensor, centroids: Tensor) -> float:
    """Mean squared distance of x [N, D] to its nearest centroid."""
    x = torch.as_tensor(x, dtype=torch.float32)
    return float(((x - centroids[nearest(x, centroids)]) ** 2).sum(-1).mean())


# -- files -----------------------------------------------------------------------------------------------------


def save_centroids(centroids: Tensor, path: str | os.PathLike, meta: dict | None = None) -> Path:
    """Write `centroids` [K, D] (+ a JSON metadata string: what features, layer, data) as safetensors, atomically."""
    from safetensors.torch import save_file

    from ..fileio import atomic_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file({"centroids": centroids.detach().float().cpu().contiguous()}, str(tmp),
                  metadata={"speechtok": json.dumps({"kind": "kmeans", **(meta or {})})})
    return path


def load_centroids(path: str | os.PathLike) -> tuple[Tensor, dict]:
    """`.safetensors` (written by `save_centroids` or `speechtok convert`) or `.npy` [K, D] -> (centroids, meta)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        if path.suffix == ".npy":
            arr, meta = np.load(path, allow_pickle=False), {}
            centroids = torch.from_numpy(np.asarray(arr, dtype=np.float32))
        elif path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                if "centroids" not in f.keys():
                    raise CheckpointError(f"{path}: no 'centroids' tensor")
                centroids = f.get_tensor("centroids").float()
                meta = json.loads((f.metadata() or {}).get("speechtok", "{}"))
        else:
            raise CheckpointError(f"{path}: k-means centroids must be .safetensors or .npy "
                                  "(joblib files: speechtok convert kmeans-joblib)")
    except CheckpointError:
        raise
    except Exception as e:  # numpy / safetensors raise many types on corrupt files
        raise CheckpointError(f"{path}: unreadable centroids ({' '.join(str(e).split())[:200]})") from None
    if centroids.ndim != 2 or not torch.isfinite(centroids).all():
        raise CheckpointError(f"{path}: centroids must be a finite float array [K, D], got {tuple(centroids.shape)}")
    return centroids, meta
