"""Unit tests of dashboard/."""
