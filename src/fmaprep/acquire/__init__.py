"""Acquisition: the throttled FMA website scraper, the FMA dataset-archive importer, and the
synthetic demo corpus.

Both write FMA's layout (design contract 9): ``<dest>/<id[:3]>/<id>.mp3`` with the id zero-padded
to 6 digits, and ``<dest>/_tracks.jsonl`` with one metadata line per track (see
:mod:`fmaprep.tracks`).

``dest`` (where tracks are stored: a folder of the job's own ``storage`` stores, local, S3 or
HDFS), ``http`` (throttled, retrying client; each URL checked as it will be sent),
``watch`` (per-request deadlines and cancel, the address each connection reached),
``interrupt`` (Ctrl-C as a cancel, not an exception at a random line), ``policy``
(the origins and addresses the scraper may reach), ``robots`` (RFC 9309), ``site`` (FMA page
parsing), ``scrape``, ``dataset``, ``tracklog`` (the destination's ``_tracks.jsonl``), ``demo``.
May import
``model``, ``tracks``, ``audio`` and ``storage``; the preprocess job never imports this room.
"""
