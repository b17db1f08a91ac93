"""CNN Blueprint, installed as the ``cnnbp`` package: this folder is the package.

    cnnbp.builder    blueprint → IR → analysis → Keras model (TensorFlow only in keras_builder)
    cnnbp.contract   the typed files passed between stages (no TensorFlow)
    cnnbp.train      run directories        cnnbp.export  ONNX bundles
    cnnbp.serve      the inference server   cnnbp.cli     the ``cnnbp`` command
"""
