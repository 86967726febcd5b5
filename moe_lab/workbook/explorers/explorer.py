"""The widget layer every explorer shares: an ``ipywidgets.interactive`` laid out for a laptop screen.

An :class:`Explorer` puts its controls in a compact grid (as many columns as fit, each control
showing its value) above one output that holds the figure, so a learner moves a control and sees
the figure change without scrolling at 1280x720. Displayed, it shows the controls and a static
rendering of the default values (what nbval, ``make book`` and GitHub see); moving a control draws
the live view inside the widget and clears the static one.
"""

from __future__ import annotations

import base64

import ipywidgets
from matplotlib.figure import Figure

from moe_lab.workbook.explorers.cases import message_html, png_bytes

CONTROL_MIN_WIDTH = "270px"
"""The narrowest a control's grid column gets: room for a label, a slider and its readout."""
LABEL_WIDTH = "86px"
"""Every control's description column, the same width so the grid lines up."""
STYLE = {"description_width": LABEL_WIDTH}


def _ipython():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def bundle(shown) -> dict:
    """A display bundle for what a view returned: a Figure (PNG) or an HTML string."""
    if isinstance(shown, Figure):
        return {"image/png": base64.b64encode(png_bytes(shown)).decode("ascii"),
                "text/plain": f"<figure: {shown.get_suptitle() or 'explorer view'}>"}
    return {"text/html": str(shown), "text/plain": "(HTML view)"}


class Hold:
    """While active, an :class:`Explorer` does not redraw: for controls that move other controls."""

    def __init__(self):
        self.depth = 0

    def __enter__(self):
        self.depth += 1

    def __exit__(self, *exc):
        self.depth -= 1

    @property
    def active(self) -> bool:
        return self.depth > 0


def slider(w=ipywidgets, **kw):
    """A slider that redraws on release (not on every pixel) and shows its value."""
    kw.setdefault("continuous_update", False)
    kw.setdefault("style", STYLE)
    kw.setdefault("readout", True)
    kw.setdefault("layout", {"width": "auto"})
    return kw.pop("cls", w.IntSlider)(**kw)


def control(cls, **kw):
    """Any other control with the shared label width, filling its grid cell."""
    kw.setdefault("style", STYLE)
    kw.setdefault("layout", {"width": "auto"})
    return cls(**kw)


class Explorer(ipywidgets.interactive):
    """``ipywidgets.interactive`` over a view function that returns ``(figure or HTML, data)``.

    ``.result`` is the data of the last view, ``.shown`` its figure (or HTML), ``.error`` the
    message of the last bad input (``None`` when it drew), ``.controls`` the widgets by name and
    ``.renders`` how many views were drawn. The widget's children are the grid of controls and the
    output; ``.grid`` is the grid.
    """

    def __init__(self, view, controls: dict, *, name: str = "explorer", hold=None):
        self._view, self._name, self._live = view, name, False
        self._hold = hold if hold is not None else Hold()
        self._static_handle = None
        self.shown, self.error, self.renders = None, None, 0
        self.controls = dict(controls)
        for c in self.controls.values():
            c.tooltip = c.tooltip or c.description  # the full label, should a narrow cell cut it
        super().__init__(self._render, **self.controls)
        self._first = (self.shown, self.error)
        self._static_bundle = None
        self.grid = ipywidgets.GridBox(
            list(self.controls.values()),
            layout=ipywidgets.Layout(
                grid_template_columns=f"repeat(auto-fill, minmax({CONTROL_MIN_WIDTH}, 1fr))",
                grid_gap="0px 14px", width="100%", align_items="center"))
        self.grid.add_class("moe-lab-controls")
        self.out.add_class("moe-lab-view")
        self.children = (self.grid, self.out)
        self._live = True

    @property
    def static_bundle(self) -> dict:
        """The display bundle of the default values' view: a PNG (or HTML, or the error message)."""
        if self._static_bundle is None:
            shown, error = self._first
            if shown is not None:
                self._static_bundle = bundle(shown)
            else:
                message = f"cannot draw: {error}"
                self._static_bundle = {"text/html": message_html(message), "text/plain": message}
        return self._static_bundle

    def _render(self, **kwargs):
        if self._hold.active:  # another control is being adjusted to this one: draw once, after
            return self.result
        try:
            shown, data = self._view(**kwargs)
        except (ValueError, TypeError, FileNotFoundError, RuntimeError) as err:  # say why, no traceback
            self.error, self.shown = str(err), None
            message = f"cannot draw: {err}"
            self._show(lambda: {"text/html": message_html(message), "text/plain": message})
            return None
        self.error, self.shown = None, shown
        self.renders += 1
        self._show(lambda: bundle(shown))
        return data

    def _show(self, make_bundle):
        """Draw into the widget's output (live updates only; the first view is the static one)."""
        if not self._live or _ipython() is None:
            return
        from IPython.display import display
        display(make_bundle(), raw=True)
        if self._static_handle is not None:
            self._static_handle.update({"text/plain": "", "text/html": ""}, raw=True)
            self._static_handle = None

    def _ipython_display_(self, **kwargs):
        from IPython.display import display
        display(self._repr_mimebundle_(), raw=True)
        self._static_handle = display(self.static_bundle, raw=True, display_id=True)

    def values(self) -> dict:
        """The controls' current values, by name."""
        return {k: c.value for k, c in self.controls.items()}

    def __repr__(self):  # the widget's text/plain: what a viewer without live widgets shows
        return f"{self._name}: run this cell for live controls"
