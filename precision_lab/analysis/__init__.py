"""Analysis of rows: causes (the walk), fixes, upcasting and loss scaling, gates,
diffs, and measurements of the backend."""
