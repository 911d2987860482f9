"""The labeling dashboard (Streamlit, issue 10, in progress) and its label store (``store.py``)."""
