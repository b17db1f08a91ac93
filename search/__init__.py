"""``cnnbp search``: the best member of a blueprint's family for the data and the budget.

Candidates are checked statically (``candidate``) before any TensorFlow; Optuna samples
(``study``); trials train through ``cnnbp.train.fit``; ``outputs`` writes the results.
"""
