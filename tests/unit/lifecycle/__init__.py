"""Unit tests of services/lifecycle/."""
