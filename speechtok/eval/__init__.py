"""Evaluation: pure functions on arrays and tensors (PESQ, STOI, ...). Nothing here is imported by loading a
tokenizer; the metric packages (`pip install 'speechtok[eval]'`) are imported when a metric is first called."""

from .pesq import pesq, pesq_protocol
from .stoi import stoi, stoi_protocol

__all__ = ["pesq", "pesq_protocol", "stoi", "stoi_protocol"]
