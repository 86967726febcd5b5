"""Looking inside the kernels without a GPU: how each stage launches (:mod:`.launches`), which program adds
to which counter (:mod:`.atomics`, checked against :mod:`.tracer`'s interpreted runs), the interpreter's
builder hooks (:mod:`.hooks`) and the code Triton generates for an H100 (:mod:`.ir`).

Imports the core only; the core never imports this package.
"""
