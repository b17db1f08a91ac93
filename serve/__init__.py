"""ONNX bundles → an ONNX Runtime HTTP server speaking the Open Inference Protocol (KServe V2)."""
