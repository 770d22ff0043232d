"""The benchmark harness behind ``clisonix bench``."""
