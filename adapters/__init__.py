"""Adapters to the outside world that are not storage: identity providers and config files.

``core`` declares the ports (``core.identity_ports``) and never imports this package; the
wiring (``api.identity_wiring``, ``cli``) builds these adapters and passes them in.
Database and blob-store adapters live in ``storage``.
"""
