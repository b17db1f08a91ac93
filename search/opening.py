"""Open the shared study: create it, or load it to resume (refusing one made for another
blueprint or space), with the sampler its objectives call for; and find it again from a search
folder's ``search.json`` for ``--refresh``."""
from __future__ import annotations

import json
import os
from pathlib import Path

from cnnbp.builder.search_space import SearchSpace
from cnnbp.contract.errors import RefusedError, UsageError

from .settings import Settings
from .storage import open_storage, storage_url

SEARCH_FILE = "search.json"  # OUT/search.json: where the study is, for --refresh


def open_study(space: SearchSpace, doc: dict, settings: Settings, epochs: int | None = None):
    """Create the study, or load it to resume; refuse one made for another space. Returns
    the shared study and the sampler for the proposer's shadow study (``proposer``).
    ``epochs``: the blueprint's ``training.epochs``, the most a trial trains."""
    import warnings

    import optuna

    if not settings.storage:  # a shared database is opened before OUT is made
        settings.out.mkdir(parents=True, exist_ok=True)
    url = storage_url(settings)
    with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = open_storage(url)
    settings.out.mkdir(parents=True, exist_ok=True)
    directions = ["maximize"] + ["minimize"] * (len(space.objectives) - 1)
    seed = worker_seed(settings)
    if len(directions) == 1:
        sampler = optuna.samplers.TPESampler(seed=seed,
                                             n_startup_trials=startup_trials(settings))
        pruner = make_pruner(space, epochs)
    else:
        sampler = optuna.samplers.NSGAIISampler(
            seed=seed, population_size=max(4, min(50, settings.trials)))
        pruner = optuna.pruners.NopPruner()  # Optuna prunes single-objective studies only
    # The shared study only stores: every candidate is chosen by `sampler` in the proposer's
    # shadow study and enqueued with its values fixed, so its own sampler never draws.
    study = optuna.create_study(storage=storage, pruner=pruner,
                                sampler=optuna.samplers.RandomSampler(seed=seed),
                                study_name=settings.study_name, directions=directions,
                                load_if_exists=True)
    fingerprint = {"space": space.to_json(), "blueprint": _stable(doc)}
    found = {k: study.user_attrs.get(k) for k in fingerprint}
    if study.user_attrs and found != fingerprint:
        raise RefusedError(f"{url}: the study {settings.study_name!r} was made for another "
                           "blueprint or search space; pick a new -o (or --study-name) rather "
                           "than mix their trials")
    for k, v in fingerprint.items():
        if study.user_attrs.get(k) != v:
            study.set_user_attr(k, v)
    from cnnbp.contract.atomic import write_json
    write_json(settings.out / SEARCH_FILE, {"storage": url, "study_name": settings.study_name,
                                            "objectives": list(space.objectives)})
    return study, sampler


def worker_seed(settings: Settings) -> int:
    """The sampler's seed: ``--seed``, mixed with the worker's host and process when workers
    share a study (they must not all propose the same candidates)."""
    if not settings.storage:
        return settings.seed
    import socket
    return hash((settings.seed, socket.gethostname(), os.getpid())) % 2**31


def startup_trials(settings: Settings) -> int:
    """Trials sampled at random before TPE models the results: feasible ones only
    (``proposer.Proposer`` samples at random until that many have trained)."""
    return min(10, max(2, settings.trials))


def make_pruner(space: SearchSpace, epochs: int | None):
    """The pruner ``search.pruner`` names for a one-objective study. Trials report the
    validation accuracy after each epoch at step = epochs trained, so ``min_epochs`` is the
    first step a trial may be stopped at. Hyperband (reduction factor 3) runs successive
    halving in brackets that start from ``min_epochs``, 3x, 9x… up to ``epochs``: most
    trials stop after a few epochs, the best third of each rung trains on."""
    import optuna
    if space.pruner == "none":
        return optuna.pruners.NopPruner()
    if space.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3,
                                           n_warmup_steps=space.min_epochs)
    return optuna.pruners.HyperbandPruner(min_resource=space.min_epochs,
                                          max_resource="auto" if epochs is None
                                          else max(epochs, space.min_epochs),
                                          reduction_factor=3)


def load_study(out: Path):
    """The study a search folder's ``search.json`` names, and its objectives (for
    ``--refresh``). Refuses a folder that is no search's."""
    import warnings

    import optuna
    meta = out / SEARCH_FILE
    try:
        found = json.loads(meta.read_text())
        url, name, objectives = found["storage"], found["study_name"], found["objectives"]
    except FileNotFoundError:
        raise UsageError(f"--refresh {out}: {meta} does not exist; give the -o folder of a "
                         "`cnnbp search` (it writes search.json when it starts)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"--refresh {out}: {meta} is not what cnnbp search writes ({exc}); "
                         "rerun the search to rewrite it") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = open_storage(url)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise UsageError(f"--refresh {out}: the storage {meta} names holds no study {name!r}"
                         ) from None
    return study, tuple(objectives)


def _stable(doc: dict) -> str:
    return json.dumps(doc, sort_keys=True, default=str)
