"""Vulnerability data (OSV records) and matching packages against it."""
