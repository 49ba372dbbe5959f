"""Streamlit glue shared by the pages: auth guard, cached services, components."""
