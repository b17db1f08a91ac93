"""The hand-written PyTorch side of bench/gpu.py: a cnnbp net's IR as an ``nn.Sequential`` and
a plain training loop, timed per epoch.

Covers the layers the benchmarked nets use (CONV, POOL, BN, activations, DROPOUT, FLATTEN,
FC, global pooling); anything else raises rather than being guessed. Initialisation is
PyTorch's default, not the blueprint's: it does not change the speed.
"""
from __future__ import annotations

import time

import torch
from torch import nn

_ACTIVATIONS = {"RELU": nn.ReLU, "TANH": nn.Tanh, "SIGMOID": nn.Sigmoid, "GELU": nn.GELU,
                "SWISH": nn.SiLU}


class FlattenHWC(nn.Module):
    """Flatten in Keras's (H, W, C) order, so FC weights line up with the Keras net's; on a
    channels-last tensor the permute is free."""

    def forward(self, x):
        return x.permute(0, 2, 3, 1).flatten(1) if x.dim() == 4 else x.flatten(1)


def _padding(layer):
    """A torch ``padding`` argument for the IR's ``same`` / ``valid`` / symmetric pads."""
    if layer.padding == "valid":
        return 0
    if layer.padding == "same":
        if any(s != 1 for s in layer.stride):
            raise NotImplementedError(f"{layer.name}: 'same' padding with a stride")
        return "same"
    if any(a != b for a, b in layer.padding):
        raise NotImplementedError(f"{layer.name}: asymmetric padding {layer.padding}")
    return tuple(a for a, _ in layer.padding)


def to_torch(network) -> nn.Sequential:
    """``network`` (a ``cnnbp.builder.ir.Network``, 2-D images) as lazy torch modules: shapes
    are filled in by the first forward pass. The classifier's softmax is left out because
    ``cross_entropy`` takes logits."""
    if network.spatial_rank != 2:
        raise NotImplementedError("only 2-D image nets")
    mods, flat = [], False
    for layer in network.layers:
        kind = layer.kind
        if kind == "CONV":
            mods.append(nn.LazyConv2d(layer.filters, layer.kernel, layer.stride, _padding(layer),
                                      layer.dilation, layer.groups, layer.bias))
        elif kind == "POOL":
            pad = _padding(layer)
            if pad == "same":
                raise NotImplementedError(f"{layer.name}: 'same' pooling")
            cls = nn.MaxPool2d if layer.mode == "max" else nn.AvgPool2d
            mods.append(cls(layer.size, layer.stride, pad, ceil_mode=layer.rounding == "ceil"))
        elif kind == "GLOBAL_POOL":
            cls = nn.AdaptiveMaxPool2d if layer.mode == "max" else nn.AdaptiveAvgPool2d
            mods += [cls(1), nn.Flatten()]
            flat = True
        elif kind == "BN":  # Keras's momentum weighs the old mean; torch's weighs the new one
            cls = nn.LazyBatchNorm1d if flat else nn.LazyBatchNorm2d
            mods.append(cls(eps=layer.epsilon, momentum=1 - layer.momentum))
        elif kind == "ACTIVATION":
            if layer.fn == "LEAKY_RELU":
                mods.append(nn.LeakyReLU(layer.alpha))
            elif layer.fn == "ELU":
                mods.append(nn.ELU(layer.alpha))
            else:
                mods.append(_ACTIVATIONS[layer.fn]())
        elif kind == "DROPOUT":
            mods.append(nn.Dropout(layer.rate))
        elif kind == "FLATTEN":
            mods.append(FlattenHWC())
            flat = True
        elif kind == "FC":
            mods.append(nn.LazyLinear(layer.units, layer.bias))
        else:
            raise NotImplementedError(f"{layer.name}: {kind} has no translation here")
    return nn.Sequential(*mods)


def variants(cuda: bool) -> list[tuple[str, str, bool]]:
    """(label, precision, compiled). "mixed" is fp16 autocast with a GradScaler, the same
    arithmetic as Keras's mixed_float16; "bf16" is bfloat16 autocast with no scaler, as
    Keras's mixed_bfloat16; on a CPU only fp32 is run."""
    if not cuda:
        return [("fp32", "fp32", False)]
    return [("fp32 (TF32)", "fp32", False), ("mixed bf16", "bf16", False),
            ("mixed fp16", "mixed", False), ("mixed fp16 + torch.compile", "mixed", True)]


def train(network, x_uint8, y, batch: int, epochs: int, label: str, precision: str,
          compiled: bool) -> dict:
    """Train a fresh copy of ``network`` on NHWC uint8 ``x_uint8``; return the epoch times.

    The arrays go to the device once, scaled to [0, 1] (the hand-written Keras side scales
    its NumPy arrays the same way); each step gathers a shuffled batch there, so this is the
    loop's speed without any input pipeline. The last partial batch is dropped so a compiled
    model sees one shape.
    """
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    # JAX computes float32 convolutions and matmuls on TF32 tensor cores by default: match it.
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("high")
    torch.backends.cudnn.benchmark = True  # the first epoch absorbs the autotuning

    x = torch.from_numpy(x_uint8).to(dev).float().div_(255)  # NHWC
    y = torch.from_numpy(y).to(dev, torch.long)
    model = to_torch(network).to(dev)
    with torch.no_grad():  # materialise the lazy modules before the optimizer sees them
        model(x[:2].permute(0, 3, 1, 2))
    model = model.to(memory_format=torch.channels_last)
    step_model = torch.compile(model) if compiled else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7,  # Keras Adam's defaults
                           fused=dev.type == "cuda")
    half = {"mixed": torch.float16, "bf16": torch.bfloat16}.get(precision)
    scaler = torch.amp.GradScaler(dev.type, enabled=precision == "mixed")  # fp16 only
    loss_fn = nn.CrossEntropyLoss()
    steps = len(x) // batch
    model.train()

    seconds = []
    for _ in range(epochs):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        order = torch.randperm(len(x), device=dev)
        for i in range(steps):
            idx = order[i * batch:(i + 1) * batch]
            xb = x[idx].permute(0, 3, 1, 2)  # NCHW view of NHWC memory: channels_last
            with torch.autocast(dev.type, half or torch.float16, enabled=half is not None):
                loss = loss_fn(step_model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        final_loss = loss.item()  # waits for the epoch's last step
        seconds.append(time.perf_counter() - started)
    name = torch.cuda.get_device_name() if dev.type == "cuda" else "CPU"
    return {"variant": label, "precision": precision, "epoch_seconds": seconds,
            "images_per_epoch": steps * batch, "device": name,
            "versions": {"torch": torch.__version__}, "final_loss": final_loss}
