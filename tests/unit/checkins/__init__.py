"""Unit tests of services/checkins/."""
