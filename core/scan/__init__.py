"""Image analysis: the filesystem view of an image's layers and the package analyzers."""
