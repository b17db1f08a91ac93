"""Loaded data against the net: the sample shape, the number of classes, and the class names,
matched by name so the model's outputs follow the blueprint's ``class_names`` order.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .data import Dataset, ImageFiles
from .labels import fail, listed


def check_against(data, input_shape: tuple[int, ...], classes: int,
                  class_names: tuple[str, ...] = ()):
    """Refuse data whose sample shape or classes do not fit the net; return it with its labels
    numbered in the order of the model's outputs (``class_names``' order when given)."""
    shape = tuple(data.x_train.shape[1:]) if isinstance(data, Dataset) else tuple(input_shape)
    if shape != tuple(input_shape):
        if len(shape) == 3 and (shape[1], shape[2], shape[0]) == tuple(input_shape):
            raise fail(f"{data.source}: samples are {'x'.join(map(str, shape))}, which looks "
                       f"channels-first (CxHxW); this tool takes channels last (HxWxC, the "
                       f"blueprint's {'x'.join(map(str, input_shape))}): transpose the arrays "
                       "with x.transpose(0, 2, 3, 1) and save them again")
        raise fail(f"{data.source}: samples are {'x'.join(map(str, shape))} but the blueprint's "
                   f"input is {'x'.join(map(str, input_shape))}; change `input:` (or "
                   f"--set input=[{', '.join(map(str, shape))}]) or use data of that shape")
    class_names = tuple(class_names)
    if data.named:
        order = match_names(data.class_names, class_names, classes, data.source)
        return _renumbered(data, order) if order is not None else data
    found = int(max(data.y_train.max(initial=0), data.y_test.max(initial=0))) + 1
    if found != classes:
        raise fail(f"{data.source}: its labels go up to {found - 1}, so it has {found} classes "
                   f"but the blueprint has classes: {classes}" + (
                       f"; no sample has label {found}" + (f"..{classes - 1}" if classes - found
                                                           > 1 else "")
                       if found < classes else "") + (
                       f"; list {found} class_names (the blueprint has {len(class_names)}) "
                       f"and set classes: {found}, or use matching data" if class_names else
                       f"; set --set classes={found} or use matching data"))
    if class_names:  # the data's classes are numbered: the blueprint names them
        _unique(class_names, "the blueprint's class_names", data.source, class_names, ())
        return dataclasses.replace(data, class_names=class_names)
    return data


def match_names(data_names: tuple[str, ...], class_names: tuple[str, ...], classes: int,
                source: str) -> list[int] | None:
    """Check the data's class names against the blueprint's (its ``class_names``, else just
    ``classes``); return each data class's output index when the blueprint orders them
    differently, None when the data's order is the outputs' order."""
    _unique(data_names, "the data", source, data_names, class_names)
    if not class_names:
        if len(data_names) != classes:
            raise fail(f"{source}: the data names {len(data_names)} classes "
                       f"({listed(data_names)}) but the blueprint has classes: {classes}; "
                       f"set --set classes={len(data_names)} or use matching data")
        return None
    _unique(class_names, "the blueprint's class_names", source, data_names, class_names)
    if set(data_names) != set(class_names):
        only_data = [n for n in data_names if n not in class_names]
        only_blueprint = [n for n in class_names if n not in data_names]
        raise fail(f"{source}: the data's classes and the blueprint's class_names differ "
                   f"({_both(data_names, class_names)}); only in the data: "
                   f"{listed(only_data) or 'none'}; only in the blueprint: "
                   f"{listed(only_blueprint) or 'none'}. They must be the same names, in any "
                   "order (the blueprint's order is the order of the model's outputs): rename "
                   "the data's classes or change class_names")
    order = [class_names.index(n) for n in data_names]
    return None if order == list(range(len(order))) else order


def _unique(names, whose: str, source: str, data_names, class_names) -> None:
    seen = set()
    for n in names:
        if n in seen:
            raise fail(f"{source}: {whose} names the class {n!r} twice "
                       f"({_both(data_names, class_names)}); each class needs one name")
        seen.add(n)


def _both(data_names, class_names) -> str:
    return f"data: {listed(data_names)}" + (
        f"; blueprint's class_names: {listed(class_names)}" if class_names else "")


def _renumbered(data, order: list[int]):
    """``data`` with every label ``k`` (the data's k-th class) made ``order[k]``: training
    then reaches each class by name, and the model's outputs follow the blueprint's order."""
    table = np.asarray(order, "int64")
    names = [""] * len(order)
    for k, i in enumerate(order):
        names[i] = data.class_names[k]
    if isinstance(data, ImageFiles):
        return dataclasses.replace(data, train_labels=table[data.train_labels],
                                   test_labels=table[data.test_labels], class_names=tuple(names))
    return dataclasses.replace(data, y_train=table[data.y_train], y_test=table[data.y_test],
                               class_names=tuple(names),
                               **({"label_map": tuple(order)} if hasattr(data, "label_map")
                                  else {}))
