"""The lecture's lesion claims (Veit et al. 2016), checked against the numbers of a lesion
study (`keras_resnets.experiments.lesions.lesion_study`): each function turns numbers into
the sentence the "Take apart" page shows, saying where the claim holds and where it fails,
with the numbers (no Streamlit here).

Example:
>>> study = {"intact": 0.98, "each": [0.5, 0.97, 0.975, 0.98]}
>>> print(lesion_verdict(study))
Holds for 3 of the 4 blocks: deleting any of blocks 2–4 costs at most 1.0 point. Fails for block 1, the first after the stem: deleting it costs 48.0 points (the first blocks build the features from single pixels, which the 1x1 stem only mixes).
"""

from __future__ import annotations

import math
import statistics

CLAIMS = {
    "lesion": "Deleting a single block of a trained ResNet at test time barely changes its "
              "accuracy, while deleting a layer of a plain network breaks it (Veit et al. 2016, "
              "Fig. 3).",
    "smooth": "The error of a ResNet grows smoothly as more blocks are deleted: it behaves like "
              "an ensemble of its 2^n paths, not like one deep network (Veit et al. 2016, Fig. 5).",
    "paths": "Path lengths follow a binomial distribution around n/2, but the gradient comes "
             "from much shorter paths: the gradient through a path shrinks geometrically with "
             "its length (Veit et al. 2016, Fig. 6).",
}
SLIGHT = 0.03
"""The most a lesion may cost (3 points of accuracy) to count as "barely" changing it."""
STEEPEST = 0.10
"""The most one more random deletion may cost on average (10 points) for a smooth decline."""
GRADIENT_SHARE = 0.9
"""The share of the gradient whose path lengths `paths_verdict` reports."""
WELL_TRAINED = 0.97
"""The held-out accuracy below which a digit classifier is too briefly trained for the claims
(the first minute's run reaches 90-94%, and single-block lesions of it cost several points)."""
MIN_EPOCHS = 2


def points(fraction: float) -> str:
    """``fraction`` of accuracy in points, one decimal: ``points(0.01) == '1.0 point'``."""
    value = f"{abs(fraction) * 100:.1f}"
    return f"{value} point" if value == "1.0" else f"{value} points"


def block_ranges(blocks) -> str:
    """Block numbers as runs: ``block_ranges([1, 2, 3, 7]) == 'blocks 1–3 and 7'``."""
    blocks = sorted(blocks)
    runs = []
    for block in blocks:
        if runs and block == runs[-1][1] + 1:
            runs[-1][1] = block
        else:
            runs.append([block, block])
    words = [f"{a}" if a == b else f"{a}–{b}" for a, b in runs]
    listed = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
    return ("block " if len(blocks) == 1 else "blocks ") + listed


def drops(study) -> list[float]:
    """What deleting each block costs: the intact accuracy minus the lesioned one."""
    return [study["intact"] - accuracy for accuracy in study["each"]]


def one_block(study) -> dict:
    """The single-block lesions of ``study`` in numbers: ``mean``, ``median`` and ``worst``
    drop and the ``worst_block`` (1-based)."""
    cost = drops(study)
    worst = max(range(len(cost)), key=cost.__getitem__)
    return {"mean": statistics.fmean(cost), "median": statistics.median(cost),
            "worst": cost[worst], "worst_block": worst + 1}


def lesion_verdict(resnet, plain=None) -> str:
    """Whether deleting one block of the ResNet of study ``resnet`` barely changes its accuracy
    (costs at most `SLIGHT`), block by block; with the plain twin's study ``plain``, how much
    more a lesion costs there."""
    cost = drops(resnet)
    n = len(cost)
    slight = [i + 1 for i, c in enumerate(cost) if c <= SLIGHT]
    costly = [i + 1 for i, c in enumerate(cost) if c > SLIGHT]
    if not costly:
        text = (f"Holds for all {n} blocks: deleting any one costs at most {points(max(cost))} "
                f"(median {points(statistics.median(cost))}).")
    else:
        low, high = min(cost[b - 1] for b in costly), max(cost[b - 1] for b in costly)
        spread = points(high) if low == high else f"{low * 100:.1f}–{points(high)}"
        first = costly == list(range(1, len(costly) + 1))
        where = (", the first after the stem" if len(costly) == 1 else
                 ", the first ones after the stem") if first else ""
        why = (" (the first blocks build the features from single pixels, which the 1x1 stem "
               "only mixes)") if first else ""
        it = "it" if len(costly) == 1 else "one"
        failed = f"Fails for {block_ranges(costly)}{where}: deleting {it} costs {spread}{why}."
        if slight:
            text = (f"Holds for {len(slight)} of the {n} blocks: deleting any of "
                    f"{block_ranges(slight)} costs at most "
                    f"{points(max(cost[b - 1] for b in slight))}. {failed}")
        else:
            text = failed
    if plain is not None:
        theirs = one_block(plain)
        text += (f" The plain twin: deleting one of its blocks costs {points(theirs['median'])} "
                 f"at the median (ResNet: {points(statistics.median(cost))}), up to "
                 f"{points(theirs['worst'])} (block {theirs['worst_block']}).")
    return text


def smooth_verdict(resnet, plain=None) -> str:
    """Whether the ResNet's accuracy falls smoothly with ``k`` random deletions: by at most
    `STEEPEST` per extra deletion on average (its study's ``random`` curve, from k = 0)."""
    curve = resnet["random"]
    ks = [0, *curve["k"]]
    accuracy = [resnet["intact"], *curve["accuracy"]]
    steps = [accuracy[i] - accuracy[i + 1] for i in range(len(ks) - 1)]
    worst = max(range(len(steps)), key=steps.__getitem__)
    shown = ", ".join(f"{k}: {a:.1%}" for k, a in zip(ks, accuracy)
                      if k in (0, 1, ks[len(ks) // 2], ks[-1]))
    fall = (f"the steepest step, from {ks[worst]} to {ks[worst + 1]} deleted blocks, costs "
            f"{points(steps[worst])}")
    verdict = "Holds" if steps[worst] <= STEEPEST else "Fails"
    text = (f"{verdict}: {fall} (accuracy by blocks deleted, mean of {curve['samples']} random "
            f"sets: {shown}).")
    if plain is not None:
        k, accuracy = plain["random"]["k"], plain["random"]["accuracy"]
        text += (f" The plain twin: {accuracy[0]:.1%} with {k[0]} deleted, "
                 f"{accuracy[-1]:.1%} with {k[-1]} (chance: 10%).")
    return text


def paths_verdict(resnet) -> str:
    """Whether the gradient comes from paths shorter than the typical one, ``n / 2`` blocks
    long (its study's ``gradient`` shares by path length ``k``)."""
    n = len(resnet["each"])
    shares = dict(zip(resnet["gradient"]["k"], resnet["gradient"]["share"]))
    most = max(shares, key=shares.get)
    total, reach = 0.0, n
    for k in sorted(shares):
        total += shares[k]
        if total >= GRADIENT_SHARE:
            reach = k
            break
    half = math.ceil(n / 2)
    verdict = "Holds" if most < n / 2 else "Fails"
    return (f"{verdict}: half of the 2^{n} paths cross {half} or more blocks, but paths of at "
            f"most {reach} blocks carry {GRADIENT_SHARE:.0%} of the gradient, and paths of "
            f"{most} blocks the most.")


def training_warning(accuracy: float, epochs: int | None) -> str | None:
    """Why the claims need not hold for a network that reaches ``accuracy`` on held-out digits
    after ``epochs`` epochs (None when unknown), or None when it is trained well enough."""
    brief = epochs is not None and epochs < MIN_EPOCHS
    if accuracy >= WELL_TRAINED and not brief:
        return None
    trained = f" after {epochs} epoch{'s' if epochs != 1 else ''}" if epochs is not None else ""
    return (f"This network reaches {accuracy:.1%} on held-out digits{trained}: trained this "
            f"briefly (below {WELL_TRAINED:.0%} or {MIN_EPOCHS} epochs), its blocks have not "
            "settled into the ensemble Veit et al. describe, so the claims below need not hold. "
            "The shipped network was trained to its best for this page.")
