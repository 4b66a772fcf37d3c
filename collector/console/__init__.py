"""The web console: static files the collector serves at ``GET /`` and ``GET /static/{name}``
(``collector.http.console``), package data so every install carries them. No build step, no
CDN, nothing fetched at run time but the collector's own API.

- ``index.html``: the shell. It holds no data, no inline script and no inline style (the
  Content-Security-Policy allows neither), so it is served without a token.
- ``app.js``: wires the rest together; one query at a time, the URL is its state (``url.js``).
- ``api.js``: ``fetch`` with the token the user typed (sessionStorage) and NDJSON streams read
  from a ``ReadableStream`` as they arrive, each request abortable.
- ``rows.js``: the hits list, virtualized (a bounded window of rows in the DOM), long lines cut
  with an expand control, matches marked with ``<mark>`` around text nodes.
- ``histogram.js``: records per time bucket by level, inline SVG; click or drag to zoom.
- ``live.js``: the live tail's connection and its resume cursor across collector restarts.
- ``detail.js``, ``facets.js``, ``status.js``, ``keys.js``: a record's detail and context, the
  top values of a field, the status strip, the keyboard.
- ``theme.js`` (a classic script, before the first paint) and ``style.css``: light and dark.

Every string from a record or the API goes into the page as text (``textContent``, text nodes),
never as HTML. The browser tests are in ``tests/console``.
"""
