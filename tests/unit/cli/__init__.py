"""Unit tests of services/cli/."""
