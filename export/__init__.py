"""Keras model → ONNX bundle (tf2onnx export, ONNX Runtime validation); see issue 4."""
