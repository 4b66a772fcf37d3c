"""The query engine: searches, counts, context and live tail over the storage interface, with no
HTTP in sight (``collector.http`` parses requests into it and streams its rows)."""
