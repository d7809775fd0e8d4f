"""Positive security model building blocks (issue 6): parser hardening and formats.

Sans-IO: nothing here performs I/O. Not wired into the pipeline yet.
"""
