"""Unit tests of services/review/."""
