"""The multi-host driver: MultiWorkerMirroredStrategy from ``TF_CONFIG`` with a distributed step.

Keras 3's ``fit`` fails under this strategy ("Attempt to convert a value (PerReplica…)",
keras-team/keras#20585, reproduced with TF 2.21 / Keras 3.15), so this driver runs
``strategy.run`` inside a ``tf.function`` over the *same* model, optimizer, loss, metrics,
run-directory callback and final report as the ``fit`` path in ``train.fit``.
MirroredStrategy with ``fit`` does work on these versions, so one host with several GPUs keeps
the ``fit`` driver.

The chief (worker 0) writes the run directory ``-o``; worker *i* writes ``<-o>.worker<i>``,
so workers sharing a filesystem never write the same file.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from cnnbp.builder import Compiled
from cnnbp.contract.errors import UsageError
from cnnbp.contract.metrics import TrainMetrics


def cluster() -> tuple[int, int] | None:
    """(number of workers, this worker's index) from TF_CONFIG, or None for a single host."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        config = json.loads(raw)
        workers = config["cluster"]["worker"]
        task = config["task"]
        behind_chief = "chief" in config["cluster"] and task["type"] != "chief"
        index = int(task["index"]) + (1 if behind_chief else 0)
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"TF_CONFIG: not a valid cluster spec ({exc}); expected "
                         '{"cluster": {"worker": ["host:port", ...]}, "task": '
                         '{"type": "worker", "index": 0}}') from None
    count = len(workers) + len(config["cluster"].get("chief", []))
    return (count, index) if count > 1 else None


def train_multiworker(compiled: Compiled, data_spec: str, out: str | Path,
                      quiet: bool = False) -> TrainMetrics:
    """Train on every worker in TF_CONFIG; all end with the same weights."""
    from cnnbp.builder.tf_env import import_tensorflow
    tf = import_tensorflow()
    from . import device as devices
    from .callback import flush_beside, make_callback
    from .results import finish
    from .session import compile_model, prepare

    workers, index = cluster()
    # The strategy must exist before any other TensorFlow op runs in this process.
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    device = devices.Device(f"{workers} workers x CPU", 0, strategy, 1, False, "float32")
    out = Path(out) if index == 0 else Path(f"{out}.worker{index}")
    started = time.perf_counter()
    session = prepare(compiled, data_spec, out, device=device)
    model = compile_model(session)
    callback = make_callback(session, model, echo=not quiet and index == 0)
    callback.set_model(model)
    t = compiled.network.training

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    train_data = strategy.experimental_distribute_dataset(
        session.pipelines.train.with_options(options))
    loss_fn = model.loss.__class__.from_config({**model.loss.get_config(), "reduction": None})

    @tf.function
    def train_epoch(iterator):
        def step(x, y):
            with tf.GradientTape() as tape:
                probs = model(x, training=True)
                per_example = loss_fn(y, probs)
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=t.batch_size)
                if model.losses:
                    loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
            grads = tape.gradient(loss, model.trainable_variables)
            model.optimizer.apply_gradients(zip(grads, model.trainable_variables))
            hits = tf.equal(tf.argmax(probs, 1), tf.argmax(y, 1))
            correct = tf.reduce_sum(tf.cast(hits, "float32"))
            return tf.reduce_sum(per_example), correct, tf.cast(tf.shape(y)[0], "float32")

        totals = tf.zeros([3])
        for x, y in iterator:
            parts = strategy.run(step, args=(x, y))
            totals += tf.stack([strategy.reduce("SUM", p, axis=None) for p in parts])
        return totals

    @tf.function
    def evaluate(dataset):  # weights are identical everywhere: each worker evaluates locally
        totals = tf.zeros([3])
        for x, y in dataset:
            probs = model(x, training=False)
            hits = tf.equal(tf.argmax(probs, 1), tf.argmax(y, 1))
            correct = tf.reduce_sum(tf.cast(hits, "float32"))
            totals += tf.stack([tf.reduce_sum(loss_fn(y, probs)), correct,
                                tf.cast(tf.shape(y)[0], "float32")])
        return totals

    try:
        for epoch in range(session.state.epoch, t.epochs):
            callback.on_epoch_begin(epoch)
            loss_sum, correct, count = train_epoch(iter(train_data)).numpy()
            logs = {"accuracy": correct / count, "loss": loss_sum / count}
            if session.pipelines.validation is not None:
                loss_sum, correct, count = evaluate(session.pipelines.validation).numpy()
                logs.update({"val_accuracy": correct / count, "val_loss": loss_sum / count})
            callback.on_epoch_end(epoch, logs)  # the chief's line is printed once saved
            if model.stop_training:
                break
    except BaseException:
        flush_beside(callback)
        raise
    callback.on_train_end()  # the last epoch's commit
    return finish(session, model, started)[0]
