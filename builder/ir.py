"""The intermediate representation: a validated net as immutable plain dataclasses.

Blueprint → IR is where validation happens; everything after (analysis tables, the Keras
builder, export) trusts these objects. No TensorFlow here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

Size = tuple[int, ...]           # one entry per spatial axis
Pads = tuple[tuple[int, int], ...]  # (before, after) per spatial axis
Padding = Union[str, Pads]       # "valid", "same" or explicit pads


@dataclass(frozen=True)
class Conv:
    """A convolution (grouped when ``groups`` > 1); sizes are per spatial axis."""
    kind = "CONV"
    name: str
    filters: int
    kernel: Size
    stride: Size
    padding: Padding
    dilation: Size
    groups: int
    bias: bool
    rounding: str | None  # None: must tile exactly in strict mode
    origin: str = ""      # where in the blueprint it came from, for messages


@dataclass(frozen=True)
class Pool:
    """A max or average pooling window."""
    kind = "POOL"
    name: str
    mode: str             # "max" | "avg"
    size: Size
    stride: Size
    padding: Padding
    rounding: str | None
    origin: str = ""


@dataclass(frozen=True)
class GlobalPool:
    """Max or average over all positions: the spatial axes go, channels stay."""
    kind = "GLOBAL_POOL"
    name: str
    mode: str
    origin: str = ""


@dataclass(frozen=True)
class Activation:
    """An element-wise activation, named by its token (RELU, TANH, ...)."""
    kind = "ACTIVATION"
    name: str
    fn: str               # a token name: RELU, LEAKY_RELU, ELU, TANH, SIGMOID, GELU, SWISH
    alpha: float | None = None
    origin: str = ""


@dataclass(frozen=True)
class BatchNorm:
    """Batch normalization over the channel axis."""
    kind = "BN"
    name: str
    momentum: float
    epsilon: float
    origin: str = ""


@dataclass(frozen=True)
class LRN:
    """AlexNet's local response normalization across channels."""
    kind = "LRN"
    name: str
    size: int             # channels in the window, as in the AlexNet paper's n
    alpha: float
    beta: float
    bias: float
    origin: str = ""


@dataclass(frozen=True)
class Dropout:
    """Dropout at ``rate`` during training; the identity at inference."""
    kind = "DROPOUT"
    name: str
    rate: float
    origin: str = ""


@dataclass(frozen=True)
class Flatten:
    """Positions and channels into one vector, before the first fully connected layer."""
    kind = "FLATTEN"
    name: str
    origin: str = ""


@dataclass(frozen=True)
class Dense:
    """A fully connected layer; the last one carries the softmax."""
    kind = "FC"
    name: str
    units: int
    bias: bool
    softmax: bool = False  # the classifier: SOFTMAX folded into its FC
    origin: str = ""


Layer = Union[Conv, Pool, GlobalPool, Activation, BatchNorm, LRN, Dropout, Flatten, Dense]


@dataclass(frozen=True)
class Weights:
    """Initialization and weight decay for every CONV and FC."""

    init: str = "glorot_uniform"   # a Keras initializer name
    bias_init: str = "zeros"
    l2: float = 0.0                # L2 penalty on kernels (weight decay)
    seed: int = 0                  # per-layer seeds derive from it: same seed, same net


@dataclass(frozen=True)
class Augment:
    """Random changes applied in the input pipeline while training (never in the model)."""

    flip: str = "none"         # none | horizontal | vertical | both
    translate: float = 0.0     # up to this fraction of each spatial size
    crop: int = 0              # pad by this many pixels, then crop back at random
    rotate: float = 0.0        # degrees, either way
    contrast: float = 0.0
    brightness: float = 0.0

    @property
    def any(self) -> bool:
        """Whether any augmentation is switched on."""
        return self.flip != "none" or any((self.translate, self.crop, self.rotate,
                                           self.contrast, self.brightness))


@dataclass(frozen=True)
class Training:
    """How the net is fitted; defaults are a sound Adam run."""

    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adam"          # sgd | adam | adamw | rmsprop
    learning_rate: float = 1e-3
    momentum: float = 0.9            # sgd and rmsprop
    nesterov: bool = False
    weight_decay: float = 0.0        # decoupled, applied by the optimizer
    schedule: str = "constant"       # constant | step | exponential | cosine
    step_epochs: int = 10            # step: multiply by gamma every step_epochs
    gamma: float = 0.1
    warmup_epochs: float = 0.0       # linear warm-up before the schedule
    label_smoothing: float = 0.0
    early_stopping: int = 0          # patience in epochs on val_loss; 0 = off
    validation_split: float = 0.1
    seed: int = 0
    augment: Augment = field(default_factory=Augment)
    # Input: how images are resized to the net (serving resizes the same way), where decoded
    # pixels are kept between epochs, and what a file that cannot be decoded does.
    resize: str = "stretch"          # stretch | center_crop | letterbox
    cache: str = "auto"              # auto | memory | disk | none
    cache_budget_mb: int = 256       # auto caches in memory up to this many decoded MB
    # images whose pixels fit the normalisation mean/std: 500 of 8,000 224x224 JPEGs gave
    # means within 0.006 and stds within 0.005 (of 1) of all 8,000, in 0.4 s against 1.0 s
    # for 2,000 (docs/benchmarks.md)
    stats_sample: int = 500
    skip_bad_images: bool = False    # skip and count undecodable files instead of stopping
    # Speed against reproducibility: "auto" means on for CPU (cheap there), off for GPUs
    # (deterministic kernels cost GPU speed); mixed precision "auto" is bfloat16 on JAX GPUs
    # with bfloat16 tensor cores (1.81x on VGG-11, H200: docs/benchmarks.md), else float32;
    # true (float16), float16, bfloat16 and false choose.
    deterministic: bool | str = "auto"
    mixed_precision: bool | str = "auto"
    xla: bool | str = "auto"         # XLA-compiled steps; auto: Keras's choice (see train.device)
    tensorboard: bool = False        # event files in RUN/tensorboard, the way Keras users expect
    # Fine-tuning: stages kept fixed (resolved from freeze: features / [..] / {until: ..}),
    # the epoch count after which they train too (0: never), and the head's own rate.
    freeze: tuple[str, ...] = ()
    unfreeze_after: int = 0
    head_learning_rate: float | None = None


@dataclass(frozen=True)
class Network:
    """A whole net: ``input_shape`` is channels-last without the batch axis."""

    name: str
    input_shape: tuple[int, ...]
    classes: int
    layers: tuple[Layer, ...]
    weights: Weights = field(default_factory=Weights)
    strict: bool = True
    class_names: tuple[str, ...] = ()
    training: Training = field(default_factory=Training)

    @property
    def spatial_rank(self) -> int:
        """1 for signals (length x channels), 2 for images."""
        return len(self.input_shape) - 1
