"""Training throughput: `cnnbp train`'s pipeline vs a hand-written Keras `fit` on NumPy arrays.

Same architecture (blueprints/digits.yaml, no augmentation), same data (digits), same epochs,
batch size and validation split, one process, alternating; only `fit` is timed. "as shipped"
includes the run-directory callback (checkpoint + history every epoch); the "fit" rows sweep
steps_per_execution and XLA without it, so the CPU defaults are chosen by measurement.
Usage: python bench/train_speed.py [epochs] [repeats]
"""
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def handwritten_model(keras):
    L = keras.layers
    x = inputs = keras.Input((8, 8, 1))
    for filters in (32, 64):
        x = L.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = L.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = L.MaxPooling2D()(x)
    x = L.Dropout(0.25)(L.Flatten()(x))
    x = L.Dense(128, activation="relu")(x)
    return keras.Model(inputs, L.Dense(10, activation="softmax")(x))


def main(epochs: int = 10, repeats: int = 3) -> None:
    from cnnbp.builder.tf_env import import_tensorflow
    import_tensorflow()
    import keras

    from cnnbp.builder import load
    from cnnbp.train import device as devices
    from cnnbp.train.fit import compile_model, make_callback, prepare

    overrides = [f"training.epochs={epochs}", "training.augment.translate=0",
                 "training.batch_size=32", "training.validation_split=0.1"]
    compiled = load("digits", overrides)

    # No XLA row: Keras answers "Model doesn't support jit_compile=True" for this net and runs
    # without it, so such a row would only measure noise.
    def tool(spe: int, jit: bool, run_dir_callback: bool = False) -> float:
        keras.backend.clear_session()
        base = devices.configure()
        dev = devices.Device(base.name, 0, base.strategy, spe, jit, "float32")
        import tempfile
        session = prepare(compiled, "digits", tempfile.mkdtemp(), device=dev)
        model = compile_model(session)
        callbacks = [make_callback(session, model)] if run_dir_callback else []
        start = time.perf_counter()
        model.fit(session.pipelines.train, validation_data=session.pipelines.validation,
                  epochs=epochs, verbose=0, shuffle=False, callbacks=callbacks)
        return session.pipelines.train_size * epochs / (time.perf_counter() - start)

    from cnnbp.train.sources import load_source
    data = load_source("digits")
    x = ((data.x_train - data.x_train.mean()) / data.x_train.std()).astype("float32")
    y = data.y_train

    def handwritten() -> float:
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        model = handwritten_model(keras)
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        start = time.perf_counter()
        model.fit(x, y, batch_size=32, epochs=epochs, validation_split=0.1, verbose=0)
        return int(len(x) * 0.9) * epochs / (time.perf_counter() - start)

    variants = {"hand-written fit(numpy)": handwritten,
                "cnnbp train (as shipped)": lambda: tool(16, False, True),
                "cnnbp fit spe=1": lambda: tool(1, False),
                "cnnbp fit spe=16": lambda: tool(16, False),
                "cnnbp fit spe=64": lambda: tool(64, False)}
    for fn in variants.values():  # warm-up: first-call tracing
        fn()
    results = {k: [] for k in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            results[name].append(fn())
    base = statistics.median(results["hand-written fit(numpy)"])
    print(f"digits, {epochs} epochs, batch 32, median of {repeats} (images/s; ratio vs hand-written)")
    for name, runs in results.items():
        m = statistics.median(runs)
        print(f"  {name:26} {m:8.0f}  x{m / base:.2f}   runs: {', '.join(f'{r:.0f}' for r in runs)}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
