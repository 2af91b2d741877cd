"""Deployment bundles: ONNX + plan + device-side build/run tools, verified by SHA256SUMS."""

from .bundle import create_bundle, extract_bundle, verify_bundle

__all__ = ["create_bundle", "extract_bundle", "verify_bundle"]
