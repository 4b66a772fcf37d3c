"""Record filters the storage layer applies while it scans: the line matcher (grep semantics over
a blob), the line query (pattern, flags, time range, host/source globs) and ``where``
expressions over parsed fields. Pure; the lowest layer of the collector."""
