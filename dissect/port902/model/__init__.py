"""Published records: what a finished connection leaves behind for inference and output.

``records``: the compact ``SessionRecord`` built when a connection ends, and its summary.
"""
