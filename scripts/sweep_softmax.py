"""Sweep the softmax family through the Python API and print the stability tables.

    python scripts/sweep_softmax.py                  # K = 10 and 1000, the default formats
    python scripts/sweep_softmax.py 2 10 1000 32768  # other K
"""

import sys

import precision_lab as pl
from precision_lab.output import report

classes = [int(k) for k in sys.argv[1:]] or [10, 1000]
result = pl.sweep("softmax", classes=classes)
report.print_result(result)
