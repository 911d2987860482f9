"""The labeling dashboard (Streamlit) and its label store. Not built yet: a later issue brings it."""
