"""One KerasTuner search over the bench space, written the way KerasTuner's docs show.

Run by bench/search_vs_kerastuner.py in its own process (killed at the wall-clock budget);
it logs each trial's build outcome and seconds to LOG as JSON lines.
Usage: python bench/search_kerastuner_worker.py random|hyperband DIR EPOCHS LOG
"""
import json
import sys
import time


def main(kind: str, folder: str, epochs: int, log: str) -> None:
    import keras
    import keras_tuner as kt
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype("float32")[..., None]
    x_train, _, y_train, _ = train_test_split(x, d.target, test_size=0.2, random_state=0,
                                              stratify=d.target)

    def build_model(hp):
        started = time.perf_counter()
        try:
            inputs = keras.Input((8, 8, 1))
            h = inputs
            pool = hp.Boolean("POOL")
            n = hp.Int("N", 1, 3)
            for _ in range(hp.Int("M", 1, 4)):
                for _ in range(n):
                    h = keras.layers.Conv2D(4, 3, activation="relu")(h)
                if pool:
                    h = keras.layers.MaxPooling2D(2)(h)
            h = keras.layers.Flatten()(h)
            h = keras.layers.Dense(hp.Choice("units", [8, 16, 32]), activation="relu")(h)
            model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(h))
            model.compile(optimizer=keras.optimizers.Adam(
                hp.Float("learning_rate", 3e-3, 3e-2, sampling="log")),
                loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            ok = True
            return model
        except Exception:
            ok = False
            raise
        finally:
            with open(log, "a") as f:
                f.write(json.dumps({"built": ok, "seconds": time.perf_counter() - started,
                                    "at": time.time()}) + "\n")

    if kind == "random":
        tuner = kt.RandomSearch(build_model, objective="val_accuracy", max_trials=10_000,
                                directory=folder, project_name="bench", seed=0)
    else:
        tuner = kt.Hyperband(build_model, objective="val_accuracy", max_epochs=epochs,
                             directory=folder, project_name="bench", seed=0)
    tuner.search(x_train, y_train, epochs=epochs, validation_split=0.2, verbose=0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
