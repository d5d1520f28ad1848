"""ONNX export of a tokenizer's encoder (audio -> codes) and decoder (codes -> audio), for runtimes without
speechtok or torch (onnxruntime, web and edge). `speechtok export-onnx MODEL -o DIR [--stream-step N]`; needs the
`onnx` extra. `onnx_stream.py`: the streaming step graphs; `onnx_runtime.py`: a numpy + onnxruntime runtime of them."""

from .onnx import ONNX_FORMAT, OnnxExportError, export_onnx

__all__ = ["ONNX_FORMAT", "OnnxExportError", "export_onnx"]
