"""The built-in unlearning methods, one module each. They are registered by name in the `unlearners` entry-point
group (see unlearners/registry.py for the table used when the package is not installed)."""
