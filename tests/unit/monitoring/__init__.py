"""Unit tests of services/monitoring/."""
