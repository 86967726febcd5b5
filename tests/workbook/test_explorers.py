"""moe_lab.workbook.explorers: the plain view functions, and the explorers driven from Python (no browser).

Widgets are tested as ipywidgets allows without a front end: set ``explorer.controls[name].value``
(or the value of a control in ``explorer.grid.children``), which re-runs the view, and read
``explorer.result``. The display logic
(static figure first, cleared by the first live view) is checked with IPython's capturing display
publisher. The real browser test is tests/workbook/test_browser.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

import moe_lab
from moe_lab import routing
from moe_lab.inspection import atomics
from moe_lab.registry import stage
from moe_lab.workbook import explorers as widgets

# ---------------------------------------------------------------------------------------------
# skew


def test_skew_slider_runs_from_uniform_through_zipf_to_hot():
    assert widgets.skew_distribution(0) == ("uniform", 0.0, "uniform")
    assert widgets.skew_distribution(1.25) == ("zipf", 1.25, "zipf s=1.25")
    assert widgets.skew_distribution(widgets.ZIPF_MAX)[0] == "zipf"
    assert widgets.skew_distribution(widgets.SKEW_HOT)[0] == "hot"
    values = [v for _, v in widgets.SKEW_OPTIONS]
    assert values == sorted(values) and values[0] == 0.0 and values[-1] == widgets.SKEW_HOT
    for bad in (-0.1, 2.5):
        with pytest.raises(ValueError, match="skew"):
            widgets.skew_distribution(bad)
    with pytest.raises(TypeError, match="skew"):
        widgets.skew_distribution("steep")


def test_more_skew_concentrates_the_slots():
    def top_share(skew):
        case = widgets.make_case("deepseek-v3", 2000, 8, 0, skew, 0.0, 3)
        per_expert = np.bincount(case.topk_ids.reshape(-1).numpy(), minlength=256)
        return np.sort(per_expert)[-1] / per_expert.sum()
    shares = [top_share(s) for s in (0.0, 1.0, 2.0, widgets.SKEW_HOT)]
    assert shares == sorted(shares), shares
    assert shares[-1] == pytest.approx(1 / 8)  # the hot expert is in every token's top-8


def test_ep_sizes_divide_the_experts():
    assert widgets.ep_sizes("mixtral") == [1, 2, 4, 8]
    assert widgets.ep_sizes("deepseek-v2-lite")[-1] == 64


# ---------------------------------------------------------------------------------------------
# routing view


@pytest.mark.parametrize("preset, ep_size, rank, skew, pad", [
    ("deepseek-v3", 8, 3, 0.0, 0.25), ("deepseek-v2-lite", 4, 1, 1.5, 0.0),
    ("mixtral", 2, 1, widgets.SKEW_HOT, 0.5), ("qwen3-moe", 16, 15, 0.75, 0.1)])
def test_routing_view_numbers_agree_with_the_reference(preset, ep_size, rank, skew, pad):
    fig, data = widgets.routing_view(preset, 300, ep_size, rank, skew, pad, seed=5)
    assert isinstance(fig, Figure) and len(fig.axes) >= 4
    case = widgets.make_case(preset, 300, ep_size, rank, skew, pad, 5)
    assert torch.equal(data["topk_ids"], case.topk_ids)
    ref_adjusted, ref_counts = stage("torch").run(*case.args())
    assert data["expert_count"].tolist() == ref_counts.tolist()
    assert torch.equal(data["adjusted"], ref_adjusted)
    topk = routing.PRESETS[preset].topk
    assert data["padded_rows"] == int(300 * pad)
    assert data["per_rank"].sum() == (300 - data["padded_rows"]) * topk
    assert data["per_rank"][rank] == data["expert_count"].sum()
    assert (case.topk_ids[300 - data["padded_rows"]:] == -1).all()


def test_hot_skew_puts_every_token_on_the_ranks_first_expert():
    _, data = widgets.routing_view("deepseek-v3", 128, 8, 5, widgets.SKEW_HOT, 0.0)
    assert data["expert_count"][0] == 128
    assert data["distribution"] == "hot"


def test_routing_view_rejects_bad_input_by_name():
    with pytest.raises(ValueError, match="rank"):
        widgets.routing_view(rank=8, ep_size=8)
    with pytest.raises(ValueError, match="ep_size"):
        widgets.routing_view(ep_size=3)
    with pytest.raises(ValueError, match="preset"):
        widgets.routing_view(preset="gpt-5")


# ---------------------------------------------------------------------------------------------
# explorers, driven from Python


def test_routing_explorer_redraws_when_a_control_moves():
    w = widgets.routing_explorer(num_tokens=64)
    assert isinstance(w, widgets.Explorer) and w.renders == 1 and w.error is None
    first = w.result
    assert first["distribution"] == "uniform"
    assert "image/png" in w.static_bundle
    w.controls["skew"].value = widgets.SKEW_HOT
    assert w.renders == 2 and w.result["distribution"] == "hot"
    assert w.result["expert_count"][0] == 64
    # the same through the grid of controls the widget displays
    names = [c.description for c in w.grid.children]
    w.grid.children[names.index("tokens")].value = 100
    assert w.result["num_tokens"] == 100


def test_routing_explorer_keeps_preset_ep_size_and_rank_consistent():
    w = widgets.routing_explorer(num_tokens=32, ep_size=8, rank=7)
    w.controls["preset"].value = "mixtral"
    assert w.renders == 2, "one redraw per move, however many controls follow it"
    assert w.controls["rank"].value == 7
    assert list(w.controls["ep_size"].options) == [1, 2, 4, 8]
    assert w.error is None and w.result["num_experts"] == 8
    w.controls["ep_size"].value = 2
    assert w.renders == 3
    assert w.controls["rank"].max == 1 and w.controls["rank"].value == 1
    assert w.error is None and w.result["ep_size"] == 2 and w.result["rank"] == 1
    w.controls["preset"].value = "deepseek-v2-lite"
    assert w.error is None and w.result["num_experts"] == 64 and w.result["ep_size"] == 2


def test_atomics_view_is_the_model():
    fig, traffic = widgets.atomics_view("block_histogram", num_tokens=300, block=512, num_programs=2)
    assert isinstance(fig, Figure)
    case = widgets.make_case("deepseek-v3", 300, 8, 0, 0.0, 0.1, 0)
    model = atomics.atomic_traffic("block_histogram", *case.args(), block=512, num_programs=2)
    assert traffic.launch == model.launch and traffic.launch.num_programs == 2
    assert np.array_equal(traffic.atomics, model.atomics)
    # num_programs is ignored for stages that launch one program per tile
    _, per_slot = widgets.atomics_view("relaxed", num_tokens=300, num_programs=2)
    assert per_slot.launch.num_programs == per_slot.launch.num_tiles


def test_atomics_explorer_shows_the_drop_from_per_slot_to_per_expert_atomics():
    w = widgets.atomics_explorer(stage="scalar_atomic", num_tokens=400, skew=widgets.SKEW_HOT)
    per_slot = w.result
    assert per_slot.total_atomics == per_slot.counts.sum() > 400
    assert per_slot.atomics[:, 0].sum() == 400 - int(400 * 0.1)  # the hot counter, every real token
    w.controls["stage"].value = "block_histogram"
    hist = w.result
    assert hist.launch.kernel == "block_histogram"
    assert hist.total_atomics <= hist.launch.num_programs * hist.num_local < per_slot.total_atomics
    assert hist.counts.tolist() == per_slot.counts.tolist()
    w.controls["num_programs"].value = 4 * atomics.H100_SMS  # clamped to the tiles
    assert w.result.launch.num_programs == w.result.launch.num_tiles


def test_explorer_reports_bad_input_instead_of_crashing():
    w = widgets.atomics_explorer(stage="naive", preset="deepseek-v2-lite", num_tokens=40)
    assert w.error is None
    w.controls["block"].value = 64  # not a multiple of topk 6
    assert w.result is None and "multiple of topk" in w.error
    w.controls["block"].value = widgets.BLOCK_DEFAULT
    assert w.error is None and w.result.launch.block == 32 * 6


# ---------------------------------------------------------------------------------------------
# layout: what a learner sees on a 1280x720 screen


@pytest.mark.parametrize("make", [lambda: widgets.routing_explorer(num_tokens=32), widgets.atomics_explorer,
                                  widgets.ir_explorer, lambda: widgets.perf_explorer(synthetic_results())],
                         ids=["routing", "atomics", "ir", "perf"])
def test_every_control_shows_a_value_at_its_default(make):
    w = make()
    assert w.children == (w.grid, w.out), "the controls' grid first, then the one output"
    assert list(w.grid.children) == list(w.controls.values())
    for name, c in w.controls.items():
        assert c.value is not None, f"{name} is blank at its default"
        if isinstance(c.value, tuple):  # a multiple selection: something selected
            assert c.value, f"{name} has nothing selected"
        elif hasattr(c, "options"):  # a dropdown shows the label of its value: it must have one
            labels = [str(o[0] if isinstance(o, tuple) else o) for o in c.options]
            assert c.index is not None and labels[c.index].strip(), f"{name} shows no label"
        assert len(c.description) <= 13, f"{name}'s label {c.description!r} does not fit the grid column"
    assert "repeat(auto-fill" in w.grid.layout.grid_template_columns


def test_atomics_explorer_names_the_stage_rule_and_the_library_grid():
    w = widgets.atomics_explorer(stage="block_histogram", num_tokens=300, num_programs=None)
    assert w.controls["block"].label == "stage's rule"
    assert w.controls["num_programs"].label == "library's, here"
    assert w.error is None
    library = w.result.launch.num_programs
    w.controls["num_programs"].value = 1
    assert w.result.launch.num_programs == 1
    w.controls["num_programs"].value = widgets.GRID_LIBRARY
    assert w.result.launch.num_programs == library


def test_text_before_the_widget_runs_says_to_run_the_cell():
    w = widgets.routing_explorer(num_tokens=16)
    bundle = w._repr_mimebundle_()
    assert bundle["text/plain"] == "routing explorer: run this cell for live controls"


@pytest.mark.parametrize("preset,ep_size", [("mixtral", 8), ("deepseek-v3", 1)])
def test_a_single_bar_gets_a_whole_number_axis(preset, ep_size):
    fig, data = widgets.routing_view(preset, num_tokens=16, ep_size=ep_size)
    ax_rank, ax_local = fig.axes[1], fig.axes[2]
    for ax, n in ((ax_rank, ep_size), (ax_local, data["num_local"])):
        ticks = ax.get_xticks()
        assert all(float(t).is_integer() for t in ticks), ticks
        lo, hi = ax.get_xlim()
        assert lo < -0.5 and hi > n - 0.5, "every bar inside the axis"


def test_figures_fit_under_the_controls_on_a_laptop_screen():
    for fig in (widgets.routing_view(num_tokens=16)[0], widgets.atomics_view(num_tokens=16)[0]):
        width, height = fig.get_size_inches() * widgets.DPI
        assert width <= 900 and height <= 470, (width, height)
        for ax in fig.axes:  # titles, labels and cell numbers no smaller than 7 pt (8 px at 80 DPI)
            for text in [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts]:
                if text.get_text():
                    assert text.get_fontsize() >= 7, (text.get_text(), text.get_fontsize())


@pytest.fixture
def shell():
    """An IPython shell whose display outputs are captured (and removed again afterwards)."""
    from IPython.core.displaypub import CapturingDisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell

    sh = InteractiveShell.instance()
    sh.display_pub = CapturingDisplayPublisher()
    yield sh
    InteractiveShell.clear_instance()


def test_display_shows_widget_then_static_figure_and_live_view_replaces_it(shell):
    from IPython.display import display

    w = widgets.routing_explorer(num_tokens=48)
    display(w)
    out = shell.display_pub.outputs
    assert len(out) == 2
    assert "application/vnd.jupyter.widget-view+json" in out[0]["data"]      # live controls
    assert "image/png" in out[1]["data"]                                       # static fallback
    static_id = out[1]["transient"]["display_id"]
    out.clear()
    w.controls["rank"].value = 2
    pngs = [o for o in out if "image/png" in o["data"] and not o["update"]]
    cleared = [o for o in out if o["update"] and o["transient"]["display_id"] == static_id]
    assert len(pngs) == 1 and len(cleared) == 1 and cleared[0]["data"]["text/plain"] == ""


# ---------------------------------------------------------------------------------------------
# performance view, on a synthetic frame built here (never committed as data)


def synthetic_results():
    rows = []
    for stage_name, per_slot_ns in (("scalar_atomic", 0.06), ("block_histogram", 0.004), ("copy", 0.003)):
        for dist in ("uniform", "hot"):
            for tokens in (1024, 8192, 65536):
                us = 2.0 + per_slot_ns * tokens * 8 / 1000 * (3 if dist == "hot" else 1)
                rows.append(dict(stage=stage_name, mode="eager", preset="deepseek-v3", num_experts=256,
                                 topk=8, ep_size=8, num_local=32, distribution=dist, num_tokens=tokens,
                                 num_slots=tokens * 8, median_us=us, p20_us=us * 0.95, p80_us=us * 1.05,
                                 bytes=tokens * 64 + 128, gbps=(tokens * 64 + 128) / us / 1000,
                                 correct=True, card="synthetic card", driver="0", cuda="0", torch="0",
                                 triton="0", python="3", date="2000-01-01", run_id="synthetic"))
    return pd.DataFrame(rows)


@pytest.mark.parametrize("kind", widgets.PERF_KINDS)
def test_perf_view_plots_the_selection(kind):
    df = synthetic_results()
    fig, rows = widgets.perf_view(df, "deepseek-v3", "hot", ("scalar_atomic", "block_histogram"), kind)
    assert isinstance(fig, Figure)
    assert set(rows["distribution"]) == {"hot"}
    assert set(rows["stage"]) == {"scalar_atomic", "block_histogram", "copy"}
    assert "synthetic card" in fig.axes[0].get_title()


def test_perf_view_refuses_an_impossible_selection():
    df = synthetic_results()
    with pytest.raises(ValueError, match="kind"):
        widgets.perf_view(df, kind="pie")
    with pytest.raises(ValueError, match="stages"):
        widgets.perf_view(df, stages=())
    with pytest.raises(ValueError, match="two stages"):
        widgets.perf_view(df, stages=("scalar_atomic",), kind="speedup")
    with pytest.raises(ValueError, match="zipf"):
        widgets.perf_view(df, distribution="zipf")


def test_perf_explorer_over_given_results():
    w = widgets.perf_explorer(synthetic_results(), distribution="uniform",
                              stages=("scalar_atomic", "block_histogram"))
    assert w.error is None and set(w.result["distribution"]) == {"uniform"}
    assert set(w.controls["distribution"].options) == {"uniform", "hot"}   # what was measured
    w.controls["distribution"].value = "hot"
    assert set(w.result["distribution"]) == {"hot"}
    w.controls["kind"].value = "speedup"
    assert w.error is None and isinstance(w.shown, Figure)


@pytest.mark.skipif(moe_lab.backend.has_gpu(), reason="with a GPU the explorer offers live measurement")
def test_perf_explorer_without_recorded_results_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("MOE_LAB_DATA", str(tmp_path))  # an empty folder: nothing recorded
    w = widgets.perf_explorer()
    assert w.result is None and "no recorded benchmark results" in w.error
    assert "no recorded benchmark results" in w.static_bundle["text/html"]


# ---------------------------------------------------------------------------------------------
# IR diff viewer (compiles for sm_90 on this machine; a few seconds per pair of stages)


def test_ir_diff_view_shows_the_memory_order_change():
    page, data = widgets.ir_diff_view("scalar_atomic", "relaxed", "ptx")
    assert not data["identical"] and data["added"] > 0 and data["removed"] > 0
    assert data["diff"].startswith("--- scalar_atomic")
    assert any("acq_rel" in line for line in data["atomics_a"])
    assert all("acq_rel" not in line for line in data["atomics_b"])
    assert any("relaxed" in line for line in data["atomics_b"])
    assert "<span" in page and "sm_90" in page  # highlighted, and says what it compiled for


def test_ir_explorer_switches_levels_and_reports_compile_errors():
    w = widgets.ir_explorer("scalar_atomic", "relaxed", "ptx")
    assert w.error is None and not w.result["identical"]
    w.controls["level"].value = "ttir"
    assert w.error is None and "tt.atomic_rmw" in w.result["diff"]
    w.controls["stage_b"].value = "scalar_atomic"  # a stage against itself: no difference
    assert w.result["identical"] and "identical" in w.shown
    w.controls["topk"].value = 6
    w.controls["stage_a"].value = "row_loop"  # tl.arange(0, 6) cannot compile
    assert w.result is None and "power of 2" in w.error
    with pytest.raises(ValueError, match="level"):
        widgets.ir_diff_view(level="cubin")
