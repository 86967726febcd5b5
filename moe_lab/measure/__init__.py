"""GPU measurement and recorded data: the one timer (:mod:`.timing`), the benchmarks (:mod:`.bench`,
:mod:`.dispatch_bench` with the chain it compares against, :mod:`.chain`), the stress run (:mod:`.stress`),
the schema and checks of every recorded CSV (:mod:`.records`), reading runs back (:mod:`.results`),
the performance targets (:mod:`.targets`), plots (:mod:`.plots`, :mod:`.figure`) and the harness of the
launch-parameter sweeps (:mod:`.sweep`).

Imports the core only; the core never imports this package.
"""
