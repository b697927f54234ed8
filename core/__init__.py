"""The Moorage domain: value types, rules and use cases, free of concrete I/O."""
