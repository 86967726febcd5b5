"""The performance explorer: recorded GPU timings (``data/bench``), or live ones on a GPU."""

from __future__ import annotations

import ipywidgets

from moe_lab import routing
from moe_lab.workbook.explorers.explorer import Explorer, control

PERF_KINDS = ("time", "bandwidth", "speedup")


def perf_view(df, preset="deepseek-v3", distribution="uniform", stages=("scalar_atomic", "block_histogram"),
              kind="time", mode="eager"):
    """One benchmark plot of ``df`` (recorded or live results, schema of :mod:`moe_lab.measure.results`).

    ``kind``: ``"time"`` (:func:`moe_lab.measure.plots.time_vs_tokens`), ``"bandwidth"``
    (:func:`moe_lab.measure.plots.bandwidth`, as a fraction of a device copy when it was measured) or
    ``"speedup"`` (:func:`moe_lab.measure.plots.speedup`, each stage over the one before). Returns
    ``(figure, rows plotted)``.
    """
    from moe_lab.measure import plots, results

    if kind not in PERF_KINDS:
        raise ValueError(f"kind must be one of {PERF_KINDS}, got {kind!r}")
    stages = list(stages)
    if not stages:
        raise ValueError("stages is empty: pick at least one stage to plot")
    if kind == "speedup" and len(stages) < 2:
        raise ValueError("a speed-up needs at least two stages (each over the one before it)")
    if kind == "time":
        fig = plots.time_vs_tokens(df, stages, preset, distribution, mode)
    elif kind == "bandwidth":
        fig = plots.bandwidth(df, stages, preset, distribution, mode,
                              relative="copy" in set(df["stage"]))
    else:
        fig = plots.speedup(df, stages, preset, distribution, mode)
    rows = results.select(df, preset=preset, distribution=distribution, mode=mode,
                          stage=[s for s in stages + ["copy"] if s in set(df["stage"])])
    return fig, rows


def perf_explorer(df=None, preset="deepseek-v3", distribution="uniform",
                  stages=("scalar_atomic", "block_histogram", "best"), kind="time", mode="eager"):
    """Performance explorer (:func:`perf_view`) over recorded results, or live ones on a GPU.

    ``df``: results to plot; ``None`` loads the latest recorded run (``moe_lab.measure.results.load``). With
    no recorded run and no GPU it shows a message saying so instead of a plot. On a GPU a "source"
    control appears: "live" measures the selection now with ``moe_lab.measure.bench`` (once per selection).
    """
    from moe_lab import backend
    from moe_lab.measure import results

    w = ipywidgets
    recorded, problem = df, None
    if recorded is None:
        try:
            recorded = results.load()
        except (FileNotFoundError, ValueError) as err:
            problem = str(err)
    live_cache: dict = {}

    def view(preset, distribution, stages, kind, mode, source="recorded"):
        if source == "live":
            key = (preset, distribution, tuple(stages), mode)
            if key not in live_cache:  # time the selection and a device copy (the floor) once
                wanted = list(stages) + ([] if "copy" in stages else ["copy"])
                live_cache[key] = results.measure_or_load(wanted, preset=preset,
                                                          distributions=(distribution,), mode=mode)
            data = live_cache[key]
        elif recorded is None:
            raise FileNotFoundError(problem + (" Pick source=live to measure on this GPU."
                                               if backend.has_gpu() else ""))
        else:
            data = recorded
        return perf_view(data, preset, distribution, stages, kind, mode)

    known = recorded
    presets = sorted(set(known["preset"])) if known is not None else list(routing.PRESETS)
    dists = [d for d in routing.DISTRIBUTIONS if known is None or d in set(known["distribution"])]
    modes = sorted(set(known["mode"])) if known is not None else ["eager", "graph"]
    order = [*moe_stage_names(), "copy", "zeros"]
    if known is None:
        stage_names = order
    else:  # what was measured: the library's stages in teaching order, then the rest
        measured = set(known["stage"])
        stage_names = [s for s in order if s in measured] + sorted(measured - set(order))
    preset = preset if preset in presets else presets[0]
    distribution = distribution if distribution in dists else dists[0]
    mode = mode if mode in modes else modes[0]
    stages = tuple(s for s in stages if s in stage_names) or tuple(stage_names[:2])
    c = {"preset": control(w.Dropdown, options=presets, value=preset, description="preset"),
         "distribution": control(w.Dropdown, options=dists, value=distribution, description="routing"),
         "mode": control(w.Dropdown, options=modes, value=mode, description="mode"),
         "kind": control(w.Dropdown, options=list(PERF_KINDS), value=kind, description="plot"),
         "stages": control(w.SelectMultiple, options=stage_names, value=stages, description="stages",
                           rows=min(len(stage_names), 12))}  # every stage in view: the selection shows
    c["distribution"].tooltip = "routing distribution"
    c["stages"].tooltip = "stages (ctrl/shift-click for several)"
    if backend.has_gpu():
        c["source"] = control(w.Dropdown, options=["recorded", "live"],
                              value="recorded" if recorded is not None else "live", description="source")
    return Explorer(view, c, name="performance explorer")


def moe_stage_names() -> list[str]:
    """The library's stages in teaching order (the registry's order)."""
    from moe_lab.registry import STAGES
    return list(STAGES)
