"""Invalidation by unsafe requests (RFC 9111 section 4.4): the paths to remove, as a pure function."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from yarl import URL

# Methods known to be safe (RFC 9110 section 9.2.1); every other method invalidates,
# including those whose safety edgecache does not know.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# Stands for the request's own host while relative references are resolved.
_TARGET_HOST = "target.invalid"


def invalidated_paths(target: str, references: Iterable[str], *, hosts: Collection[str]) -> list[str]:
    """Return the raw paths to invalidate: the target's, then each same-site reference's.

    `references` are the Location and Content-Location values of a non-error response;
    relative ones are resolved against the target. An absolute reference counts only
    when its host (with a port unless it is the scheme's default) is one of `hosts`,
    lower-cased, so that a response cannot invalidate another site's entries.
    """
    base = URL(f"http://{_TARGET_HOST}{target}", encoded=True)
    paths = [base.raw_path]
    for reference in references:
        try:
            resolved = base.join(URL(reference.strip()))
        except ValueError:
            continue
        if resolved.scheme not in ("http", "https") or resolved.host is None:
            continue
        if resolved.host == _TARGET_HOST or _authorities(resolved) & set(hosts):
            paths.append(resolved.raw_path or "/")
    return paths


def _authorities(url: URL) -> set[str]:
    host = (url.host or "").lower()
    with_port = f"{host}:{url.port}"
    return {host, with_port} if url.is_default_port() else {with_port}
