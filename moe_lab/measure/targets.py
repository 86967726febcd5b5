"""The performance targets of the shipped kernel, computed from a recorded benchmark run.

Nothing here is typed in: every measured value comes from the rows of a recorded run in
``data/bench`` (or any DataFrame with the schema of :data:`moe_lab.measure.records.BENCH`). The targets:

(a) large batches, DeepSeek-V3 1M tokens x top-8 (8M slots, 32 local experts), uniform and hot
    routing, eager and CUDA-graph mode: ``best`` at least :data:`MIN_SPEEDUP_LARGE` times faster than
    ``scalar_atomic`` (rtp-llm's kernel), and at most :data:`MAX_COPY_RATIO` times a device copy of
    the same bytes;
(b) small batches under CUDA-graph replay (DeepSeek-V3, 1 to 1024 tokens = 8 to 8192 slots):
    ``best`` at least :data:`MIN_SPEEDUP_SMALL` times faster than ``scalar_atomic`` at every size;
(c) ``best`` never slower than ``scalar_atomic`` (median against median), per mode;
(d) every row whose output was checked is bit-exact (``correct`` is True).

    python -m moe_lab.measure.targets                 # the targets of the latest recorded run, as text
    python -m moe_lab.measure.targets --markdown > docs/performance-targets.md

    t = report.targets(results.load())
    print(report.formatted(t).to_string(index=False))
    report.slower_rows(df)          # (c) in detail: where best's median is above, with p20-p80
"""

from __future__ import annotations

import pandas as pd

LARGE_PRESET = "deepseek-v3"
LARGE_TOKENS = 1 << 20
SMALL_MAX_TOKENS = 1024
DISTRIBUTIONS = ("uniform", "hot")
MODES = ("eager", "graph")

MIN_SPEEDUP_LARGE = 15.0   # (a) best over scalar_atomic at 8M slots
MAX_COPY_RATIO = 1.3       # (a) best's time over a device copy's at 8M slots
MIN_SPEEDUP_SMALL = 1.8    # (b) best over scalar_atomic, 8 to 8192 slots, CUDA-graph replay

UNCHECKED_STAGES = ("copy", "zeros")
"""Reference rows with no output to check: their ``correct`` is empty by design."""

KEY = ["mode", "preset", "distribution", "num_tokens"]
TARGET_COLUMNS = ["target", "mode", "distribution", "num_slots", "value", "goal", "met"]


def _require(df: pd.DataFrame, columns) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"df lacks the column(s) {', '.join(missing)}; expected a benchmark DataFrame "
                         f"(moe_lab.measure.results.load())")


def paired(df: pd.DataFrame, stage: str = "best", over: str = "scalar_atomic") -> pd.DataFrame:
    """``stage`` against ``over`` wherever both were measured: one row per (mode, preset,
    distribution, num_tokens) with both medians, p20 and p80, and ``speedup = median(over) /
    median(stage)`` (above 1: ``stage`` is faster).

    Raises ``ValueError`` if a (stage, key) appears twice (several runs mixed: pick one first).
    """
    _require(df, KEY + ["stage", "num_slots", "median_us", "p20_us", "p80_us"])
    sides = []
    for name, suffix in ((stage, "stage"), (over, "over")):
        rows = df[df["stage"] == name]
        if rows.empty:
            raise ValueError(f"no rows for stage {name!r}; stages present: "
                             f"{', '.join(sorted(map(str, set(df['stage']))))}")
        if rows.duplicated(KEY).any():
            raise ValueError(f"stage {name!r} has several rows for one (mode, preset, distribution, "
                             f"num_tokens): several runs are mixed; select one run first")
        cols = {c: f"{c.replace('_us', '')}_{suffix}" for c in ("median_us", "p20_us", "p80_us")}
        sides.append(rows[KEY + ["num_slots", *cols]].rename(columns=cols))
    out = sides[0].merge(sides[1].drop(columns="num_slots"), on=KEY, how="inner")
    out["speedup"] = out["median_over"] / out["median_stage"]
    return out.sort_values(KEY).reset_index(drop=True)


def _one(df: pd.DataFrame, what: str, **where) -> pd.Series:
    rows = df
    for col, val in where.items():
        rows = rows[rows[col] == val]
    if len(rows) != 1:
        found = "no row" if rows.empty else f"{len(rows)} rows"
        raise ValueError(f"{what}: expected one row for {where}, found {found}")
    return rows.iloc[0]


def large_batch(df: pd.DataFrame, *, preset: str = LARGE_PRESET, num_tokens: int = LARGE_TOKENS,
                distributions=DISTRIBUTIONS, modes=MODES) -> pd.DataFrame:
    """Target (a): best's speed-up over scalar_atomic and best's time over the copy's."""
    pairs = paired(df, "best", "scalar_atomic")
    copy = df[df["stage"] == "copy"]
    rows = []
    for mode in modes:
        for dist in distributions:
            where = dict(mode=mode, preset=preset, distribution=dist, num_tokens=num_tokens)
            p = _one(pairs, "target (a) best vs scalar_atomic", **where)
            c = _one(copy, "target (a) device copy", **where)
            ratio = p["median_stage"] / c["median_us"]
            rows.append(dict(target="(a) best speed-up over scalar_atomic", mode=mode, distribution=dist,
                             num_slots=int(p["num_slots"]), value=float(p["speedup"]),
                             goal=f">= {MIN_SPEEDUP_LARGE:g}x", met=bool(p["speedup"] >= MIN_SPEEDUP_LARGE)))
            rows.append(dict(target="(a) best time / copy time", mode=mode, distribution=dist,
                             num_slots=int(p["num_slots"]), value=float(ratio),
                             goal=f"<= {MAX_COPY_RATIO:g}x", met=bool(ratio <= MAX_COPY_RATIO)))
    return pd.DataFrame(rows, columns=TARGET_COLUMNS)


def small_batch(df: pd.DataFrame, *, preset: str = LARGE_PRESET, max_tokens: int = SMALL_MAX_TOKENS,
                distributions=DISTRIBUTIONS, mode: str = "graph") -> pd.DataFrame:
    """Target (b): best's speed-up over scalar_atomic at every recorded size up to ``max_tokens``."""
    pairs = paired(df, "best", "scalar_atomic")
    pairs = pairs[(pairs["mode"] == mode) & (pairs["preset"] == preset) & (pairs["num_tokens"] <= max_tokens)
                  & pairs["distribution"].isin(list(distributions))]
    if pairs.empty:
        raise ValueError(f"target (b): no {mode}-mode rows of best and scalar_atomic for {preset} up to "
                         f"{max_tokens} tokens")
    rows = [dict(target="(b) best speed-up over scalar_atomic", mode=mode, distribution=r.distribution,
                 num_slots=int(r.num_slots), value=float(r.speedup), goal=f">= {MIN_SPEEDUP_SMALL:g}x",
                 met=bool(r.speedup >= MIN_SPEEDUP_SMALL))
            for r in pairs.sort_values(["distribution", "num_tokens"]).itertuples()]
    return pd.DataFrame(rows, columns=TARGET_COLUMNS)


def slower_rows(df: pd.DataFrame, stage: str = "best", baseline: str = "scalar_atomic") -> pd.DataFrame:
    """Every row where ``stage``'s median is above ``baseline``'s, with both p20-p80 ranges, whether
    those ranges overlap, and both stages' CUDA-graph medians for the same input (where recorded)."""
    pairs = paired(df, stage, baseline)
    slow = pairs[pairs["median_stage"] > pairs["median_over"]].copy()
    slow["ranges_overlap"] = (slow["p20_stage"] <= slow["p80_over"]) & (slow["p20_over"] <= slow["p80_stage"])
    graph = pairs[pairs["mode"] == "graph"].drop(columns=["mode", "num_slots", "p20_stage", "p80_stage",
                                                          "p20_over", "p80_over", "speedup"])
    graph = graph.rename(columns={"median_stage": "graph_median_stage", "median_over": "graph_median_over"})
    slow = slow.merge(graph, on=["preset", "distribution", "num_tokens"], how="left")
    return slow.reset_index(drop=True)


def never_slower(df: pd.DataFrame, stage: str = "best", baseline: str = "scalar_atomic",
                 modes=MODES) -> pd.DataFrame:
    """Target (c), per mode: how many compared rows have ``stage``'s median above ``baseline``'s."""
    pairs = paired(df, stage, baseline)
    rows = []
    for mode in modes:
        sub = pairs[pairs["mode"] == mode]
        if sub.empty:
            raise ValueError(f"target (c): no {mode}-mode rows where both {stage} and {baseline} "
                             f"were measured")
        slower = int((sub["median_stage"] > sub["median_over"]).sum())
        rows.append(dict(target=f"(c) rows where {stage} is slower", mode=mode, distribution="all",
                         num_slots=pd.NA, value=float(slower), goal=f"0 of {len(sub)}", met=slower == 0))
    return pd.DataFrame(rows, columns=TARGET_COLUMNS)


def correctness(df: pd.DataFrame) -> pd.DataFrame:
    """Target (d): rows of a stage whose ``correct`` is not True (False, or never checked).

    ``copy`` and ``zeros`` rows have no output to check and are left out.
    """
    _require(df, ["stage", "correct"])
    checked = df[~df["stage"].isin(UNCHECKED_STAGES)]
    if checked.empty:
        raise ValueError("target (d): df has no rows of a kernel stage")
    ok = checked["correct"].astype("boolean").fillna(False).astype(bool)
    bad = int((~ok).sum())
    return pd.DataFrame([dict(target="(d) rows not bit-exact or unchecked", mode="all", distribution="all",
                              num_slots=pd.NA, value=float(bad), goal=f"0 of {len(checked)}",
                              met=bad == 0)], columns=TARGET_COLUMNS)


def targets(df: pd.DataFrame) -> pd.DataFrame:
    """The whole TARGETS table: (a), (b), (c) and (d), one row per checked condition."""
    return pd.concat([large_batch(df), small_batch(df), never_slower(df), correctness(df)],
                     ignore_index=True)


def formatted(table: pd.DataFrame) -> pd.DataFrame:
    """``targets`` for printing: speed-ups and ratios as ``15.7x``, counts as integers, ``met`` as yes/NO."""
    out = table.copy()

    def value(row):
        if row["target"].startswith(("(c)", "(d)")):
            return f"{int(row['value'])}"
        return f"{row['value']:.2f}x"

    out["value"] = out.apply(value, axis=1)
    out["num_slots"] = out["num_slots"].map(lambda v: "" if pd.isna(v) else f"{int(v):,}")
    out["met"] = out["met"].map(lambda m: "yes" if m else "NO")
    return out


def compact_png(fig, colors: int = 256):
    """``fig`` as a palette PNG of at most ``colors`` colours, for small stored notebook outputs.

    Line plots use few colours, so this is about a quarter of the bytes of matplotlib's full-colour
    PNG at the same size and dpi; the octree palette keeps every stage's colour distinct. Returns an
    ``IPython.display.Image`` (display it, or let a cell end with it).
    """
    import io

    from IPython.display import Image
    from PIL import Image as PILImage

    if not 2 <= colors <= 256:
        raise ValueError(f"colors must be in [2, 256] (a PNG palette), got {colors!r}")
    raw = io.BytesIO()
    fig.savefig(raw, format="png", bbox_inches="tight")
    small = PILImage.open(io.BytesIO(raw.getvalue())).convert("RGB").quantize(
        colors=colors, method=PILImage.Quantize.FASTOCTREE)
    out = io.BytesIO()
    small.save(out, format="png", optimize=True)
    return Image(data=out.getvalue(), format="png")


def _cell(value) -> str:
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else \
        str(value).replace("|", "\\|")


def markdown_table(table: pd.DataFrame) -> str:
    """``table`` as a GitHub markdown table (text as it prints; ``|`` escaped)."""
    head = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    rows = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


def markdown(df: pd.DataFrame) -> str:
    """The whole report as markdown: provenance, the targets table, and where (c) fails, the rows."""
    from moe_lab.measure import results

    table = targets(df)
    met = int(table["met"].sum())
    lines = [
        "# Performance targets",
        "",
        "Generated by `python -m moe_lab.measure.targets --markdown > docs/performance-targets.md` from the "
        "recorded benchmark run; do not edit by hand (`tests/measure/test_targets.py` compares this file "
        "with a fresh run of that command).",
        "",
        f"Run: `{_cell(', '.join(map(str, pd.unique(df['run_id']))))}`; measured on "
        f"{results.provenance(df)}.",
        "",
        "The targets: (a) DeepSeek-V3, 1M tokens x top-8 (8M slots, 32 local experts), `best` at least "
        f"{MIN_SPEEDUP_LARGE:g}x faster than `scalar_atomic` (rtp-llm's kernel) and at most "
        f"{MAX_COPY_RATIO:g}x a device copy of the same bytes; (b) 1 to {SMALL_MAX_TOKENS} tokens under "
        f"CUDA-graph replay, `best` at least {MIN_SPEEDUP_SMALL:g}x faster than `scalar_atomic`; "
        "(c) `best` never slower than `scalar_atomic`, median against median; (d) every checked row "
        "bit-exact. Speed-ups are median(scalar_atomic) / median(best).",
        "",
        f"In this run `best` meets {met} of the {len(table)} targets below; a row marked NO says where it "
        "does not.",
        "",
        markdown_table(formatted(table)),
    ]
    slow = slower_rows(df)
    if len(slow):
        cols = ["mode", "distribution", "num_tokens", "median_stage", "p20_stage", "p80_stage",
                "median_over", "p20_over", "p80_over", "ranges_overlap"]
        shown = slow[cols].rename(columns={"median_stage": "best us", "p20_stage": "best p20",
                                           "p80_stage": "best p80", "median_over": "scalar_atomic us",
                                           "p20_over": "scalar_atomic p20", "p80_over": "scalar_atomic p80"})
        shown = shown.round(2).astype(object)
        lines += ["", "## Where `best` is slower than `scalar_atomic` (target c)", "",
                  "Medians and p20-p80 ranges in microseconds; `ranges_overlap` True means the two "
                  "are within run-to-run noise of each other.", "", markdown_table(shown)]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    import argparse
    import sys

    from moe_lab.measure import results

    ap = argparse.ArgumentParser(prog="python -m moe_lab.measure.targets",
                                 description="The project's performance targets from a recorded run.")
    ap.add_argument("--markdown", action="store_true", help="print the report as markdown")
    ap.add_argument("--path", default=None, help="a recorded CSV or folder (default data/bench)")
    ap.add_argument("--run-id", default=None, help="a recorded run (default: the latest)")
    args = ap.parse_args(argv)
    try:
        df = results.load(args.path, run_id=args.run_id)
    except (FileNotFoundError, ValueError) as err:
        print(f"moe_lab.measure.targets: {err}", file=sys.stderr)
        return 2
    if args.markdown:
        sys.stdout.write(markdown(df))
    else:
        print(f"TARGETS, from {results.provenance(df)}")
        print(formatted(targets(df)).to_string(index=False))
    return 0


__all__ = ["LARGE_PRESET", "LARGE_TOKENS", "SMALL_MAX_TOKENS", "MIN_SPEEDUP_LARGE", "MAX_COPY_RATIO",
           "MIN_SPEEDUP_SMALL", "paired", "large_batch", "small_batch", "slower_rows", "never_slower",
           "correctness", "targets", "formatted", "markdown_table", "markdown", "main", "compact_png"]


if __name__ == "__main__":
    raise SystemExit(main())
