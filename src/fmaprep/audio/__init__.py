"""Audio: decoders (soundfile, ffmpeg, pydub) and the pure signal code, numpy in and numpy out.

``decode`` (files to float32 blocks), ``wav`` (ffmpeg's pipe format), ``mp3info`` (the length an
mp3 declares), ``sniff`` (text or mp3, from the first bytes), ``frames`` (MPEG audio frame by
frame, over a whole body), ``resample (soxr, resampy),
``signal`` (channel, gain, mu-law), ``synth`` and ``encode`` (test signals and real mp3 bytes).
Imports only ``fmaprep.model``: no Spark, no storage, no configuration objects.
"""
