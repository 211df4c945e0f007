"""Images in and out: the SSRF-safe fetcher (`fetch`), pixel work (`images`), and where results are
kept and served from (`store`)."""

from adapter.media.fetch import FetchedImage, FetchError, FetchPolicy, ImageFetcher
from adapter.media.store import ImageStore, LocalImageStore, StoredImage, image_url, key_from_url

__all__ = [
    "FetchError",
    "FetchPolicy",
    "FetchedImage",
    "ImageFetcher",
    "ImageStore",
    "LocalImageStore",
    "StoredImage",
    "image_url",
    "key_from_url",
]
