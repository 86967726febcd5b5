"""moe_lab.workbook.show: code, notes and verify tables as a notebook shows them, and as plain text."""

from __future__ import annotations

import pandas as pd
import pytest

from moe_lab.workbook import show


def verify_frame(oks):
    return pd.DataFrame({"ok": oks, "detail": ["" if ok else f"expert_count[{i}]: got 3, expected 2"
                                               for i, ok in enumerate(oks)]},
                        index=pd.Index([f"case {i}" for i in range(len(oks))], name="case"))


def test_verify_table_says_pass_in_one_line():
    table = show.show_verify(verify_frame([True, True, True]), "best")
    assert table.failed == 0
    assert repr(table).splitlines()[0] == "best: all 3 cases pass"
    page = table._repr_html_()
    assert "all 3 cases pass" in page and "FAIL" not in page and "#fde2e1" not in page


def test_verify_table_highlights_each_failure():
    table = show.show_verify(verify_frame([True, False, True, False]))
    assert table.failed == 2 and repr(table).startswith("2 of 4 cases FAIL")
    page = table._repr_html_()
    assert page.count('style="background:#fde2e1"') == 2, "one red row per failing case"
    assert page.count("&#10007; FAIL") == 2 and page.count("&#10003; pass") == 2
    assert "expert_count[1]: got 3, expected 2" in page


def test_verify_table_refuses_something_else_by_name():
    with pytest.raises(TypeError, match="show_verify.*'ok' column.*list"):
        show.show_verify([True, False])


def test_side_by_side_wraps_onto_two_rows_when_narrow():
    pair = show.show_side_by_side(show.show_source, show.show_diff)
    page = pair._repr_html_()
    assert "flex-wrap:wrap" in page and page.count("flex:1 1 48em") == 2
    assert "<table" not in page, "a table cannot stack: it clips at 1280 px"
    assert "def show_source" in repr(pair) and "def show_diff" in repr(pair)


def test_long_code_scrolls_and_short_code_does_not():
    short = show.show_text("a\nb\nc", "text")
    long = show.show_text("\n".join(f"line {i}" for i in range(show.SCROLL_LINES + 10)), "text")
    assert "overflow:auto;border" not in short._repr_html_()
    page = long._repr_html_()
    assert "max-height" in page and "overflow:auto;border" in page
    assert f"{show.SCROLL_LINES + 10} lines" in page


def test_note_is_small_text_not_an_error():
    note = show.show_note("moe_lab: kernels run <here>")
    assert repr(note) == "moe_lab: kernels run <here>"
    assert "&lt;here&gt;" in note._repr_html_() and "color:#555" in note._repr_html_()


def test_leave_out_shows_a_branch_as_one_line():
    from moe_lab.stages import block_histogram

    whole = show.show_source(block_histogram.block_histogram_kernel)
    shown = show.show_source(block_histogram.block_histogram_kernel, leave_out="WRITE_COUNTS",
                             note="it answers a later exercise")
    assert "tl.store(count_ptr + bins, counts" in whole.text
    assert "tl.store(count_ptr + bins, counts" not in shown.text  # the branch's body is gone
    assert "    if WRITE_COUNTS:\n        ...  # it answers a later exercise\n    else:" in shown.text
    assert "tl.atomic_add(count_ptr + bins, counts" in shown.text  # the other branch stays
    assert shown.header.endswith("(the WRITE_COUNTS branch left out)")
    assert len(shown.text.splitlines()) == len(whole.text.splitlines())  # a one-line body, one-line note


def test_leave_out_a_branch_that_is_not_there_says_so():
    with pytest.raises(ValueError, match="no `if NOPE:` branch"):
        show.show_source(show.show_source, leave_out="NOPE")


def test_without_branch_keeps_what_follows_the_branch():
    text = "def f(x):\n    if FLAG:  # why\n        a = 1\n\n        b = 2\n    c = 3\n"
    want = "def f(x):\n    if FLAG:\n        ...  # gone\n    c = 3\n"
    assert show.without_branch(text, "FLAG", "gone") == want
