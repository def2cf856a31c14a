"""The README's benchmark sections, one renderer per results file, grouped by family: ``cells`` (the
runs table, its cells and the machine line every section shares), ``real_size`` (convert, quantize,
validate and package at real size), ``quality`` (the tiny models' quality figures, audio, and
imatrix beside llama-imatrix) and ``slicing``. bench/report.py maps each bench to its renderer."""
