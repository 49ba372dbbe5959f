"""Unit tests of services/model/."""
