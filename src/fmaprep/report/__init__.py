"""Reports on an OUTPUT: ``summary`` (``fmaprep inspect``) and ``html`` (``fmaprep report``, one
self-contained page). May import ``formats``, ``storage`` and ``model``.
"""
