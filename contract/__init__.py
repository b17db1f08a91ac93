"""The typed contract between the stages: errors, atomic files, and the records a run directory
and a bundle hold. No TensorFlow here; train, export, serve and the CLI read and write these
files only through this package.
"""
