"""VGG-16 written by hand in Keras, as a user would without this tool (the benchmarks' baseline).

Run as a script it builds the model and prints its summary: the baseline for `cnnbp check`.
"""
import sys


def build():
    import keras
    from keras import layers
    x = inputs = keras.Input((224, 224, 3))
    for filters, convs in zip((64, 128, 256, 512, 512), (2, 2, 3, 3, 3)):
        for _ in range(convs):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D(2, 2)(x)
    x = layers.Flatten()(x)
    for _ in range(2):
        x = layers.Dense(4096, activation="relu")(x)
        x = layers.Dropout(0.5)(x)
    return keras.Model(inputs, layers.Dense(1000, activation="softmax")(x))


if __name__ == "__main__":
    build().summary(print_fn=lambda line, **_: sys.stdout.write(line + "\n"))
