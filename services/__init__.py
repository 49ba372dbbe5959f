"""Pulse domain services. Nothing in this package imports streamlit."""
