"""Sweep the sigmoid family through the Python API and print the stability tables.

    python scripts/sweep_sigmoid.py                      # the default formats, y = 0 and 1
    python scripts/sweep_sigmoid.py bfloat16 float8_e4m3fn
"""

import sys

import precision_lab as pl
from precision_lab.output import report

dtypes = sys.argv[1:] or list(pl.DEFAULT_FORMATS)
result = pl.sweep("sigmoid", dtypes=dtypes, targets=[0.0, 1.0])
report.print_result(result)
