"""Draw the textbook figures and each format's error and onset charts through the Python API.

    python scripts/figures.py                          # into ./figures, the default formats
    python scripts/figures.py out/ float16 bfloat16    # a folder, then formats
"""

import sys

import precision_lab as pl
from precision_lab.output import figures

out = sys.argv[1] if len(sys.argv) > 1 else "figures"
dtypes = sys.argv[2:] or list(pl.DEFAULT_FORMATS)
result = pl.sweep("sigmoid", dtypes=dtypes, targets=[0.0, 1.0])
for path in figures.write_figures(out, result=result):
    print(path)
