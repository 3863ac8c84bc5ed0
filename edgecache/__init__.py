"""edgecache: an async reverse-proxy cache for storefront product pages."""

__version__ = "0.1.0"
