"""Refuse a search space that holds no feasible net before anything is made or trained."""
from __future__ import annotations

from cnnbp.builder.search_space import SearchSpace
from cnnbp.contract.errors import RefusedError

from .candidate import Candidate, judge
from .sampling import suggest

PROBE_CANDIDATES = 500     # random candidates tried before refusing a space as empty


def probe(space: SearchSpace, doc: dict, seed: int) -> Candidate:
    """The first feasible candidate among ``PROBE_CANDIDATES`` random ones, or a refusal that
    says which constraint excluded them and how."""
    import optuna
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    excluded: dict[str, list[Candidate]] = {}
    for _ in range(PROBE_CANDIDATES):
        trial = study.ask()
        cand = judge(doc, space, suggest(trial, space, doc))
        study.tell(trial, 0.0)
        if cand.feasible:
            return cand
        excluded.setdefault(cand.excluded_by, []).append(cand)
    parts = []
    for name, cands in sorted(excluded.items(), key=lambda kv: -len(kv[1])):
        what = "an impossible shape" if name == "shape" else f"over {name}"
        parts.append(f"{len(cands)} by {what} (e.g. {cands[0].values}: {cands[0].reason})")
    raise RefusedError(f"the search space holds no feasible net: none of {PROBE_CANDIDATES} "
                       f"random candidates passed the static checks — excluded {'; '.join(parts)}. "
                       "Widen the ranges or the budgets; nothing was trained")
