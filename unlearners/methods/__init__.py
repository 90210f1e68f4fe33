"""The built-in unlearning methods, one module each. Each is registered by one line of the `unlearners` entry-point
table in the project's pyproject.toml, the one list of the built-ins (see unlearners/registry.py)."""
