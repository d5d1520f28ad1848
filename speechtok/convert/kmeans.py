"""`speechtok convert kmeans-joblib MODEL.bin -o km.safetensors --unpickle`: a fairseq / textlesslib k-means model
(a joblib-pickled sklearn KMeans or MiniBatchKMeans) -> centroids as safetensors, which load without unpickling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError
from ..quantizers.kmeans import save_centroids
from . import converter


@converter("kmeans-joblib", "fairseq / textlesslib k-means (joblib-pickled sklearn KMeans) -> centroids .safetensors")
def convert_kmeans_joblib(src: Path, out: Path) -> Path:
    try:
        import joblib
    except ImportError:
        raise CheckpointError(f"{src}: reading joblib files needs the joblib package (pip install joblib)") from None
    try:
        model = joblib.load(src)  # the unpickle `convert` was allowed to do (trust_pickle=True)
    except Exception as e:
        raise CheckpointError(f"{src}: unreadable joblib file ({' '.join(str(e).split())[:200]})") from None
    centres = getattr(model, "cluster_centers_", None)
    if centres is None:
        raise CheckpointError(f"{src}: {type(model).__name__} has no cluster_centers_ (not a fitted k-means model)")
    centres = np.asarray(centres, dtype=np.float32)
    if centres.ndim != 2:
        raise CheckpointError(f"{src}: cluster_centers_ must be [K, D], got shape {centres.shape}")
    out = out if out.suffix == ".safetensors" else out.with_suffix(".safetensors")
    meta = {"source": str(src), "source_format": f"joblib {type(model).__module__}.{type(model).__name__}"}
    return save_centroids(torch.from_numpy(centres), out, meta)
