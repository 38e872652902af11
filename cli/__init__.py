"""The click command line (thin: parse, call the library, print)."""
