"""``mmscel report``: one self-contained HTML page of a store's runs, blends and tuning studies.

``scores`` computes the diagnostics (per-cell, per-target and between-run
scores, in row chunks), ``plots`` draws them with matplotlib (also used by the
notebooks), ``html`` turns tables and figures into markup, and ``page``
assembles the sections and writes the file. The public entry is
:func:`mmscel.reporting.page.report` (``mmscel.report`` in the top-level API).
"""
