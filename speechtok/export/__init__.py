"""ONNX export of a tokenizer's encoder (audio -> codes) and decoder (codes -> audio), for runtimes without
speechtok or torch (onnxruntime, web and edge). `speechtok export-onnx MODEL -o DIR`; needs the `onnx` extra."""

from .onnx import ONNX_FORMAT, OnnxExportError, export_onnx

__all__ = ["ONNX_FORMAT", "OnnxExportError", "export_onnx"]
