"""The review UI: data stewards decide parked conflicts and quarantined rows in a browser.

A small server-rendered Flask app (``cdcsync review PIPELINE``), a thin layer
over the same functions the CLI calls: :func:`sync.steward.decide` for
conflicts, :func:`sync.quality.release.decide` for quarantine items. Pages
read the state store only; a decision opens the pipeline (store and
endpoints) for the time it takes to apply it.

* :mod:`sync.review.app` — :func:`~sync.review.app.create_app`, error pages.
* :mod:`sync.review.security` — HTTP basic auth (the user name is the actor),
  CSRF tokens on every form, response headers.
* :mod:`sync.review.conflicts`, :mod:`sync.review.quarantine`,
  :mod:`sync.review.overview` — the pages.

Flask is imported only by these modules, which only ``cdcsync review``
imports: ``cdcsync --help`` and the other commands never load it.
"""
