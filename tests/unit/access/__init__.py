"""Unit tests of services/access/."""
