"""Checked blueprint + data source → trained model in a run directory (Keras ``fit``)."""
