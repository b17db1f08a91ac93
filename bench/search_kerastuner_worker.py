"""One KerasTuner Hyperband search over blueprints/digits_search.yaml's space, written the way
KerasTuner's docs show; bench/search_vs_kerastuner.py runs it in its own process and kills it
when the wall budget is spent, so every finished trial is appended to LOG (JSON lines) at once.

Data: scikit-learn's digits, prepared by hand the way cnnbp does it (cnnbp is not imported):
pixels / 16, a stratified 80/20 train/test split (random_state 0), the mean and std of every
training value (validation rows included) applied to all three sets, and 10% of the training
rows held out for validation by a NumPy permutation seeded 0 (cnnbp's split_rows).

The model: [(CONV-RELU)*N-POOL]*M-DROPOUT-(FC-RELU)*K-SOFTMAX, M 1..3, N 1..5, K 0..2, CONV
filters chosen per stage from 16/32/64, one kernel size 3 or 5, padding same, 2x2 max pools,
dropout 0.25, FC units 32/64/128 (one choice for every FC), he_normal kernels, Adam with a
cosine decay over 15 epochs from a log-uniform 0.0005..0.005, batch 32, and a
RandomTranslation(0.1) layer (zero fill, bilinear: cnnbp's translate 0.1), active in training
only. A net over 50,000 parameters is refused by the tuner's own max_model_size=50000 (it
raises FailedTrialError after the build, before any training: a FAILED trial); the tuner is
given max_consecutive_failed_trials=10,000, since its default of 3 ends the whole search after
three refusals in a row. hyperband_iterations is 10,000: the wall budget, not Hyperband's
brackets, ends the search. A trial Hyperband continues from an earlier one gets fresh Adam state, so
its cosine schedule starts again from the top (KerasTuner reloads weights only).

Each LOG line, written as the trial ends: kind (trained | refused | crashed), the trial's id,
the hyperparameters, and for a trained trial the trial it continues (parent), its epochs (tuner/initial_epoch..tuner/epochs), val_accuracy (its best epoch: the score
KerasTuner ranks trials by) and test_accuracy (the weights of that best epoch, the ones
KerasTuner checkpoints and get_best_models returns, evaluated on the test set).
Usage: python bench/search_kerastuner_worker.py DIR LOG [SEED]
"""
import json
import math
import sys
import time

MAX_EPOCHS = 15   # the blueprint's training.epochs
MAX_PARAMS = 50_000
BATCH = 32


def digits_splits(seed: int = 0):
    """(x_train, y_train, x_val, y_val, x_test, y_test), float32 NHWC and int64 labels."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype("float32")[..., None]
    x_tr, x_te, y_tr, y_te = train_test_split(x, d.target.astype("int64"), test_size=0.2,
                                              random_state=0, stratify=d.target)
    mean = np.float32(x_tr.mean(dtype="float64"))
    std = np.float32(x_tr.std(dtype="float64"))
    norm = lambda a: ((a - mean) / std).astype("float32")
    order = np.random.default_rng(seed).permutation(len(x_tr))
    cut = int(round(len(x_tr) * 0.1))
    tr, val = order[cut:], order[:cut]
    x_tr = norm(x_tr)
    return x_tr[tr], y_tr[tr], x_tr[val], y_tr[val], norm(x_te), y_te


def main(folder: str, log: str, seed: int = 0) -> None:
    import keras
    import keras_tuner as kt

    x_tr, y_tr, x_val, y_val, x_te, y_te = digits_splits()
    steps = math.ceil(len(x_tr) / BATCH)
    finished = {}  # what HyperModel.fit measured of the trial now ending

    def write(kind: str, hp, **fields) -> None:
        with open(log, "a") as f:
            f.write(json.dumps({"kind": kind, "at": time.time(), "hp": hp.values, **fields})
                    + "\n")

    class BestEpoch(keras.callbacks.Callback):
        """The weights of the epoch with the best val_accuracy (the first of equals)."""
        best, weights = -1.0, None

        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get("val_accuracy")
            if value is not None and value > self.best:
                self.best, self.weights = float(value), self.model.get_weights()

    class Digits(kt.HyperModel):
        def build(self, hp):
            inputs = keras.Input((8, 8, 1))
            h = keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant", fill_value=0.0,
                                               interpolation="bilinear", seed=seed)(inputs)
            stages, convs = hp.Int("M", 1, 3), hp.Int("N", 1, 5)
            kernel = hp.Choice("kernel", [3, 5])
            for m in range(stages):
                filters = hp.Choice(f"filters_{m + 1}", [16, 32, 64])
                for _ in range(convs):
                    h = keras.layers.Conv2D(filters, kernel, padding="same",
                                            kernel_initializer="he_normal")(h)
                    h = keras.layers.ReLU()(h)
                h = keras.layers.MaxPooling2D(2)(h)
            h = keras.layers.Flatten()(keras.layers.Dropout(0.25)(h))
            units = hp.Choice("units", [32, 64, 128])
            for _ in range(hp.Int("K", 0, 2)):
                h = keras.layers.Dense(units, activation="relu",
                                       kernel_initializer="he_normal")(h)
            outputs = keras.layers.Dense(10, activation="softmax",
                                         kernel_initializer="he_normal")(h)
            model = keras.Model(inputs, outputs)
            rate = keras.optimizers.schedules.CosineDecay(
                hp.Float("learning_rate", 5e-4, 5e-3, sampling="log"), MAX_EPOCHS * steps)
            model.compile(optimizer=keras.optimizers.Adam(rate),
                          loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            return model

        def fit(self, hp, model, *args, **kwargs):
            best = BestEpoch()
            kwargs["callbacks"] = [*kwargs.get("callbacks", []), best]
            started = time.perf_counter()
            history = model.fit(*args, **kwargs)
            if best.weights is None:
                raise RuntimeError("no epoch reported val_accuracy")
            model.set_weights(best.weights)
            test = model.evaluate(x_te, y_te, batch_size=256, verbose=0,
                                  return_dict=True)["accuracy"]
            finished.update(params=model.count_params(), val_accuracy=best.best,
                            test_accuracy=float(test),
                            seconds=round(time.perf_counter() - started, 3))
            return history

    class Logged(kt.Hyperband):
        def on_trial_end(self, trial):
            hp = trial.hyperparameters
            if trial.status == "COMPLETED" and finished:
                write("trained", hp, trial=trial.trial_id, parent=hp.values.get("tuner/trial_id"),
                      initial_epoch=hp.values.get("tuner/initial_epoch", 0),
                      epochs=hp.values.get("tuner/epochs", MAX_EPOCHS), **finished)
            else:  # FAILED: a FailedTrialError; INVALID: anything else raised
                message = (trial.message or "").strip()
                write("refused" if "Oversized model" in message else "crashed", hp,
                      trial=trial.trial_id, error=message.splitlines()[-1][:300] if message else "")
            finished.clear()
            super().on_trial_end(trial)

    tuner = Logged(Digits(), objective="val_accuracy", max_epochs=MAX_EPOCHS, factor=3,
                   hyperband_iterations=10_000, seed=seed, max_model_size=MAX_PARAMS,
                   max_consecutive_failed_trials=10_000,
                   directory=folder, project_name="digits", overwrite=True)
    tuner.search(x_tr, y_tr, validation_data=(x_val, y_val), batch_size=BATCH, verbose=0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0)
